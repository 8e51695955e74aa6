# A reusable simulation harness for sansmidreg (STYLE.md §8): simulated UAs, a simulated RFC 3261
# §10.3 main registrar, and a virtual-clock network that runs a MidRegistrar core between them and
# fires every core deadline on the way. Used by the unit tests, the hypothesis state machine and
# benchmarks/bench_reduction.py.
from .invariants import Invariants, local_contacts
from .mainreg import Behaviour, Binding, Seen, SimMainRegistrar, binding_key
from .network import Input, Network, replay
from .ua import Answer, SimUA

__all__ = [
    "Answer",
    "Behaviour",
    "Binding",
    "Input",
    "Invariants",
    "Network",
    "Seen",
    "SimMainRegistrar",
    "SimUA",
    "binding_key",
    "local_contacts",
    "replay",
]
