"""The memory plan of ``params.yaml``'s ``memory`` section, applied to a model before training.

* gradient checkpointing: each block's activations are recomputed in the backward pass
  rather than kept, so activation memory is one block's instead of every block's;
* LoRA (``peft``): the base's weights are frozen and low-rank adapters train instead, so
  gradients and AdamW state exist for the adapters only; :func:`merged` folds them into the
  weights before the model is saved, so packaging and export see a plain transformers model;
* bf16 frozen weights: with LoRA and bf16 training, the frozen base is held in bf16;
* FSDP (``memory.fsdp``, under torchrun): PyTorch's ``fully_shard`` (FSDP2) on each transformer
  block and then on the whole model, so each process holds 1/N of the weights, gradients and
  AdamW state and gathers one block's weights at a time to run it. Without it, more than one
  process means DDP: a full copy in each.

:func:`distribute` sets either up. Under FSDP the training runs on a sharded copy and the model
given stays whole on the CPU: the checkpoints are gathered from the shards into ordinary full
state dicts (the same files as a single process writes), and the best of them is loaded back
into the whole model, which is what is merged and saved.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Any

import torch
from transformers import PreTrainedModel

from aitale.errors import ParamsError
from aitale.modeling.device import Runtime
from aitale.params import MemoryParams

log = logging.getLogger(__name__)


def apply_plan(model: PreTrainedModel, plan: MemoryParams | None, runtime: Runtime) -> torch.nn.Module:
    """``model`` ready to train under ``plan``: the model itself, or a peft model wrapping it."""
    if plan is None:
        return model
    if plan.gradient_checkpointing:
        # non-reentrant: gradients reach the adapters even though the frozen embeddings need none
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if not plan.lora.enabled:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    task = TaskType.SEQ_2_SEQ_LM if model.config.is_encoder_decoder else TaskType.CAUSAL_LM
    config = LoraConfig(
        task_type=task,
        r=plan.lora.r,
        lora_alpha=plan.lora.alpha,
        lora_dropout=plan.lora.dropout,
        target_modules=plan.lora.target_modules or None,
        fan_in_fan_out=model.config.model_type == "gpt2",  # GPT-2's Conv1D stores (in, out)
    )
    adapted = get_peft_model(model, config)
    if plan.bf16_frozen and runtime.dtype == torch.bfloat16:
        for parameter in adapted.parameters():
            if not parameter.requires_grad:
                parameter.data = parameter.data.to(torch.bfloat16)
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    total = sum(p.numel() for p in adapted.parameters())
    log.info(
        "LoRA r=%d: %d trainable parameters of %d (%.2f%%)", plan.lora.r, trainable, total, 100 * trainable / total
    )
    return adapted


def merged(model: torch.nn.Module) -> PreTrainedModel:
    """A plain transformers model: LoRA adapters folded into fp32 weights, checkpointing off."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
        model = model.float()
    if model.is_activation_checkpointing:
        model.activation_checkpointing_disable()
        model.config.use_cache = True
    return model


def check_runtime(plan: MemoryParams | None, runtime: Runtime) -> None:
    """Refuse a plan this run's processes cannot carry out (FSDP in a single process)."""
    if plan is not None and plan.fsdp and runtime.world == 1:
        raise ParamsError(
            "memory.fsdp: true shards the model across processes, and this run has one: start it with "
            "torchrun --nproc-per-node N (N > 1), or set memory.fsdp: false"
        )


class Distributed:
    """How the processes hold the model being trained: ``net`` trains, ``module`` evaluates and samples.

    One process: both are the model. DDP: ``net`` wraps it and ``module`` is the model itself.
    FSDP: both are a sharded copy, whose every forward is a collective (each process must run it).
    """

    def __init__(self, model: torch.nn.Module, runtime: Runtime, shard: bool = False):
        self.model = model
        self.sharded = shard and runtime.world > 1
        if self.sharded:
            model.to("cpu")  # the whole model stays off the device: only shards go there
            self.net = _fully_sharded(copy.deepcopy(model), runtime)
            self.module = self.net
            return
        model.to(runtime.device)
        if runtime.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(model)
        else:
            self.net = model
        self.module = model

    def accumulating(self, last: bool):
        """Context of one micro-batch's forward: under DDP only the last one all-reduces the gradients.

        FSDP reduce-scatters every micro-batch instead: skipping it would hold a full unsharded gradient
        in each process until the last one, the very memory sharding is there to save."""
        if not last and not self.sharded and hasattr(self.net, "no_sync"):
            return self.net.no_sync()
        return contextlib.nullcontext()

    def weights(self) -> dict[str, torch.Tensor]:
        """The full state dict (every process calls it: under FSDP it gathers; the main one gets it all)."""
        if not self.sharded:
            return self.model.state_dict()
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(self.net, options=_full_on_main())

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """``optimizer.state_dict()`` as one process has it (every process calls it, as :meth:`weights`)."""
        if not self.sharded:
            return optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        gathered = get_optimizer_state_dict(self.net, optimizer, options=_full_on_main())
        if not gathered:
            return {}
        # keyed by parameter name there, by position in the optimizer here, as torch.optim writes it
        return _rekeyed(gathered, {name: i for i, name in enumerate(self._names(optimizer))})

    def load_optimizer(self, optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
        """Load a state from :meth:`optimizer_state` (every process, each from its own copy of the file)."""
        if not self.sharded:
            optimizer.load_state_dict(saved)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        by_name = _rekeyed(saved, dict(enumerate(self._names(optimizer))))
        set_optimizer_state_dict(self.net, optimizer, by_name, options=StateDictOptions(full_state_dict=True))

    def _names(self, optimizer: torch.optim.Optimizer) -> list[str]:
        name = {id(p): n for n, p in self.net.named_parameters()}
        return [name[id(p)] for group in optimizer.param_groups for p in group["params"]]


def _rekeyed(optimizer_state: dict[str, Any], key: dict) -> dict[str, Any]:
    """An optimizer state dict with each parameter's key replaced by ``key[old]``."""
    return {
        "state": {key[old]: value for old, value in optimizer_state["state"].items()},
        "param_groups": [
            {**group, "params": [key[old] for old in group["params"]]} for group in optimizer_state["param_groups"]
        ],
    }


def _full_on_main():
    """Gathered whole, on the CPU of the main process only (the others get an empty dict)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def _fully_sharded(model: torch.nn.Module, runtime: Runtime) -> torch.nn.Module:
    """``model`` under FSDP2: each transformer block its own unit, the rest (embeddings, tied head) the root's."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    mesh = init_device_mesh(runtime.device.type, (runtime.world,))
    kinds = set(getattr(model, "_no_split_modules", None) or ())
    blocks = [module for module in model.modules() if type(module).__name__ in kinds]
    if not blocks:
        log.warning("no transformer blocks found in %s: FSDP gathers the whole model at once", type(model).__name__)
    for block in blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    # generate runs the encoder of a T5 outside its forward: the root's weights gathered for the whole call
    register_fsdp_forward_method(model, "generate")
    log.info("FSDP over %d processes: %d blocks and the root sharded", runtime.world, len(blocks))
    return model
