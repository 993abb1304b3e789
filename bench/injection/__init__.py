"""Knowledge-injection recipes: what a LoRA adapter trains on so the corpus's facts become
answerable closed-book (the `lora` arm) or readable better (the `hybrid` arm).

`training.recipe` of a lora/hybrid arm composes any of these over today's recipe (`documents`:
the raw documents, the train split's questions, reading replay):
- `renderings: N`: N fresh renderings of every document. Facts read in one wording are stored
  as that wording and cannot be extracted by a question (Allen-Zhu & Li 2023, Physics of LMs
  3.1); paraphrase augmentation helps injection (Ovadia et al. 2023). EntiGraph (Yang et al.
  2024) is the same idea at scale: synthetic continued pretraining on diverse rewritings.
- `synthetic_qa: N`: N questions generated from every fact (passage), answered from it
  (Mecklenburg et al. 2024, Soudani et al. 2024).
- `distill: N`: prompt distillation (Kujanpää et al. 2024): the base model answers N generated
  questions per fact with the passage in its prompt (the teacher); the adapter learns to give
  those answers without it (sequence-level: the teacher's answer text is the target).
- `raft`: RAFT (Zhang et al. 2024), for the hybrid: a generated question with its gold passage
  among distractors with probability p_gold, distractors only otherwise; the answer as the
  model reads (a quote-style model quotes the gold passage).

Questions and rewritings come from a writer (bench.injection.writers): the synthetic world's own
renderers and question templates disjoint from every evaluation wording, or, for your corpus,
an instruct model (SmolLM2 by default) cached by content hash. bench.injection.leaks checks
every training set against the evaluation wordings before an adapter trains.
"""
