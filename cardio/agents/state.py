"""An agent's ``state_dict`` made from its named attributes, so each agent lists what it saves and nothing more."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch


class Checkpointable:
    """Mixin giving ``state_dict``/``load_state_dict`` over the attributes named in ``checkpointed``.

    Each part is saved by kind: torch modules and optimisers through their own ``state_dict``, tensors (e.g. a
    learnt ``log_alpha``) as a detached copy loaded back in place, numpy generators as their bit-generator state,
    anything else (counters, schedule values, ``None``) as the value itself.
    """

    checkpointed: ClassVar[tuple[str, ...]] = ()
    """Attribute names saved by :meth:`state_dict`: networks, optimisers, counters, the agent's generator."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: ``{name: saved part}`` for each name in ``checkpointed``."""
        saved: dict[str, Any] = {}
        for name in self.checkpointed:
            part = getattr(self, name)
            if isinstance(part, np.random.Generator):
                saved[name] = part.bit_generator.state
            elif isinstance(part, torch.Tensor):
                saved[name] = part.detach().clone()
            elif hasattr(part, "state_dict"):
                saved[name] = part.state_dict()
            else:
                saved[name] = part
        return saved

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (modules and tensors in place, so optimisers keep their params).

        Raises:
            KeyError: a part missing from ``state`` (a checkpoint of another agent or another version).
        """
        missing = [name for name in self.checkpointed if name not in state]
        if missing:
            raise KeyError(f"{type(self).__name__} checkpoint lacks {missing}; it holds {sorted(state)}")
        for name in self.checkpointed:
            part, value = getattr(self, name), state[name]
            if isinstance(part, np.random.Generator):
                part.bit_generator.state = value
            elif isinstance(part, torch.Tensor):
                with torch.no_grad():
                    part.copy_(value)
            elif hasattr(part, "load_state_dict"):
                part.load_state_dict(value)
            else:
                setattr(self, name, value)
