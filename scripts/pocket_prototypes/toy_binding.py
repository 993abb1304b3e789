"""Prototype (see README.md here): a fresh small model on binding alone."""
import json, math, random, sys, time
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from bench.pocket import data
from bench.pocket.train import collate, encode_example, per_example_loss, teacher_forced_accuracy
import bench.prompts as P
fmt, steps, hidden, layers, heads, lr, maxk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
torch.manual_seed(0); torch.set_num_threads(1)
tok = AutoTokenizer.from_pretrained(str(__import__("pathlib").Path(__file__).resolve().parents[2] / "checkpoints/pocket"))
def ex(rng, k):
    p, t = data.reading_example(rng, max_k=k, abstain_share=0.0, same_attribute_share=1.0)
    if fmt == "qfirst":
        ctx, q = p.split("\nQuestion: ")
        q = q.replace("\nAnswer:", "")
        p = f"Question: {q}\n{ctx}\nAnswer:"
    return p, t
cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads, intermediate_size=hidden*2, max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
model = LlamaForCausalLM(cfg)
held = random.Random(2)
mon = [ex(held, maxk) for _ in range(128)]
# only k==maxk items for a clean chance level
opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
rng = random.Random(1); t0 = time.time()
for step in range(steps):
    rows = [encode_example(tok, *ex(rng, maxk)) for _ in range(64)]
    loss = per_example_loss(model, collate(rows, tok.pad_token_id)); loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad()
    if (step + 1) % 250 == 0:
        print(json.dumps({"step": step + 1, "loss": round(loss.item(), 3), "s": round(time.time() - t0), "acc": round(teacher_forced_accuracy(model, tok, mon), 3)}), flush=True)
