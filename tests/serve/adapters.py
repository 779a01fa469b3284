"""Train tiny real LoRA adapters on the offline Phi-3 for serving tests (seconds, CPU).

Each adapter is over-fitted to answer one question with its own codeword, so a response
shows unambiguously which adapter produced it.
"""

from __future__ import annotations

import torch

from modeling import AdapterRegistry, LoraSettings, ModelSettings, attach_lora, encode_chat, load_base_model, load_tokenizer

CODEWORD_QUESTION = "What is the codeword?"


def train_codeword_adapter(registry: AdapterRegistry, name: str, codeword: str, steps: int = 30) -> None:
    """One thread: on a busy shared CPU, OpenMP threads spinning against each other made this 20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train(registry, name, codeword, steps)
    finally:
        torch.set_num_threads(threads)


def _train(registry: AdapterRegistry, name: str, codeword: str, steps: int) -> None:
    settings = ModelSettings()
    tokenizer = load_tokenizer(settings)
    torch.manual_seed(0)
    model = attach_lora(load_base_model(settings), LoraSettings(r=8, alpha=16, dropout=0.0))
    chat = [{"role": "user", "content": CODEWORD_QUESTION}]
    prompt = encode_chat(tokenizer, chat)
    full = encode_chat(tokenizer, [*chat, {"role": "assistant", "content": f"The codeword is {codeword}."}], add_generation_prompt=False)
    ids = torch.tensor([full])
    labels = ids.clone()
    labels[0, : len(prompt)] = -100  # loss on the answer only
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(ids, labels=labels).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
    registry.save(model.eval(), name, {"base_model": settings.name_or_path, "method": "lora", "codeword": codeword})
