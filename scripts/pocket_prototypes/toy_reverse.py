"""Prototype (see README.md here): the binding toy with reverse questions mixed in."""
import json, random, sys, time
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from bench.data import names
from bench.data.world import ATTRIBUTES
from bench.pocket import data
from bench.pocket.train import collate, encode_example, per_example_loss, teacher_forced_accuracy
from bench.prompts import context_prompt, completion
rev_share, steps, maxk = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0); torch.set_num_threads(1)
tok = AutoTokenizer.from_pretrained(str(__import__("pathlib").Path(__file__).resolve().parents[2] / "checkpoints/pocket"))
def fwd(rng, k):
    return data.reading_example(rng, max_k=k, abstain_share=0.0, same_attribute_share=1.0)
def rev(rng, k):
    k = rng.randint(1, k); attr = rng.choice(ATTRIBUTES)
    people = [(names.person_name(rng, 0), attr.sample(rng)) for _ in range(k)]
    passages = [data._statement(rng, attr.name, n, v) for n, v in people]
    name, value = rng.choice(people)
    q = f"Whose {attr.name.replace('_', ' ')} is {value}?"
    return context_prompt(q, passages), completion(name)
cfg = LlamaConfig(vocab_size=len(tok), hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, intermediate_size=256, max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
model = LlamaForCausalLM(cfg)
held = random.Random(2)
mon_f = [fwd(held, maxk) for _ in range(128)]; mon_r = [rev(held, maxk) for _ in range(128)]
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, betas=(0.9, 0.98))
rng = random.Random(1); t0 = time.time()
for step in range(steps):
    rows = [encode_example(tok, *(rev(rng, maxk) if rng.random() < rev_share else fwd(rng, maxk))) for _ in range(64)]
    loss = per_example_loss(model, collate(rows, tok.pad_token_id)); loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad()
    if (step + 1) % 250 == 0:
        print(json.dumps({"step": step + 1, "s": round(time.time() - t0), "fwd": round(teacher_forced_accuracy(model, tok, mon_f), 3), "rev": round(teacher_forced_accuracy(model, tok, mon_r), 3)}), flush=True)
