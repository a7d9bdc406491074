"""The memory plan (params `memory`): LoRA adapters through peft, gradient checkpointing, bf16 frozen weights,
and what FSDP refuses (its runs under torchrun are in tests/test_resume_ddp.py).

On the tiny random GPT-2, GPT-Neo and T5 of tests/support/models.py, trained a few dozen steps on one fixed batch:
seconds.
"""

import pytest
import torch
from transformers import AutoTokenizer

from aitale.errors import ParamsError
from aitale.modeling.device import Runtime
from aitale.modeling.memory import apply_plan, check_runtime, merged
from aitale.modeling.model import load_trained
from aitale.modeling.trainer import rank_chunks
from aitale.params import MemoryParams, validate
from tests.support.models import ARCHITECTURES, tiny_base

CPU = Runtime(device=torch.device("cpu"), rank=0, world=1, dtype=None)
CPU_BF16 = Runtime(device=torch.device("cpu"), rank=0, world=1, dtype=torch.bfloat16)


def plan(lora=False, checkpointing=False, bf16_frozen=False, fsdp=False) -> MemoryParams:
    return MemoryParams.model_validate(
        {
            "gradient_checkpointing": checkpointing,
            "bf16_frozen": bf16_frozen,
            "lora": {"enabled": lora, "r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": []},
            "fsdp": fsdp,
        }
    )


@pytest.fixture(scope="module")
def tokenizer(tiny_data):
    return AutoTokenizer.from_pretrained(tiny_data / "tokenizer")


@pytest.fixture(scope="module")
def batch(tokenizer, tiny_data):
    text = (tiny_data / "processed/train.jsonl").read_text()[:4000]
    ids = tokenizer(text).input_ids[: 4 * 48]
    return torch.tensor(ids).reshape(4, 48)


def logits(model, ids):
    """Logits on fixed inputs; a T5 reads them as its request and as its decoder's input alike."""
    extra = {"decoder_input_ids": ids} if model.config.is_encoder_decoder else {}
    with torch.no_grad():
        return model(input_ids=ids, **extra).logits


def train_steps(model, batch, runtime=CPU, steps=30, lr=3e-2) -> list[float]:
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        with runtime.autocast():
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    return losses


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_lora_trains_adapters_only_and_merges_into_an_equal_plain_model(kind, tokenizer, batch, tmp_path):
    model = tiny_base(kind, tokenizer)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    adapted = apply_plan(model, plan(lora=True), CPU)
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    assert 0 < trainable < 0.2 * sum(p.numel() for p in adapted.parameters())

    losses = train_steps(adapted, batch)
    assert losses[-1] < losses[0] - 1.0, losses  # nats

    probe = batch[:2, :20]
    adapted_logits = logits(adapted, probe)
    plain = merged(adapted)
    assert type(plain).__name__ == type(model).__name__ and not hasattr(plain, "peft_config")
    assert not any("lora" in name for name, _ in plain.named_parameters())
    # W + BA once, in fp32, instead of W x + B(A x): equal up to summation order
    torch.testing.assert_close(logits(plain, probe), adapted_logits, atol=1e-4, rtol=1e-4)
    changed = [n for n, p in plain.named_parameters() if not torch.equal(p, before[n])]
    assert changed  # the adapters' update is in the weights now

    plain.save_pretrained(tmp_path)  # what the train stage writes: a plain transformers folder
    assert not (tmp_path / "adapter_config.json").exists()
    reloaded = load_trained(tmp_path)
    torch.testing.assert_close(logits(reloaded, probe), adapted_logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_gradient_checkpointing_gives_the_same_gradients_and_the_loss_goes_down(kind, tokenizer, batch):
    grads = []
    for checkpointing in (False, True):
        model = apply_plan(tiny_base(kind, tokenizer), plan(checkpointing=checkpointing), CPU)
        assert model.is_activation_checkpointing == checkpointing
        model.train()
        model(input_ids=batch, labels=batch).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-5)

    model = apply_plan(tiny_base(kind, tokenizer), plan(lora=True, checkpointing=True), CPU)
    losses = train_steps(model, batch)
    assert losses[-1] < losses[0] - 1.0, losses  # nats
    assert not merged(model).is_activation_checkpointing


def test_bf16_frozen_weights_halve_the_base_and_still_train(tokenizer, batch):
    model = apply_plan(tiny_base("gpt2", tokenizer), plan(lora=True, bf16_frozen=True), CPU_BF16)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    adapters = [p for p in model.parameters() if p.requires_grad]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)
    assert adapters and all(p.dtype == torch.float32 for p in adapters)
    losses = train_steps(model, batch, runtime=CPU_BF16)
    assert losses[-1] < losses[0] - 1.0, losses  # nats
    plain = merged(model)
    assert all(p.dtype == torch.float32 for p in plain.parameters())

    # without bf16 training the option has nothing to do: the frozen base stays fp32
    fp32 = apply_plan(tiny_base("gpt2", tokenizer), plan(lora=True, bf16_frozen=True), CPU)
    assert all(p.dtype == torch.float32 for p in fp32.parameters())


def test_fsdp_is_refused_with_lora_and_in_a_single_process():
    with pytest.raises(ParamsError, match=r"memory: fsdp and lora.enabled: not both"):
        validate(MemoryParams, "memory", {**plan(lora=True).model_dump(), "fsdp": True})
    with pytest.raises(ParamsError, match=r"memory.fsdp: true shards the model across processes, and this run has one"):
        check_runtime(plan(fsdp=True), CPU)
    check_runtime(plan(fsdp=True), Runtime(device=torch.device("cpu"), rank=1, world=2, dtype=None))
    check_runtime(plan(), CPU)


@pytest.mark.parametrize("rows", [8, 7, 5, 3, 1])
def test_every_process_runs_as_many_batches(rows):
    # a sharded forward is a collective: a process with fewer rows runs an empty (dummy) batch instead
    shares = [rank_chunks(torch.arange(rows), 2, Runtime(torch.device("cpu"), rank, 2, None)) for rank in (0, 1)]
    assert len(shares[0]) == len(shares[1])
    assert sorted(torch.cat([c for share in shares for c in share]).tolist()) == list(range(rows))
    alone = rank_chunks(torch.arange(rows), 2, CPU)  # one process: plain batches, as before
    assert [c.tolist() for c in alone] == [c.tolist() for c in torch.arange(rows).split(2)]
