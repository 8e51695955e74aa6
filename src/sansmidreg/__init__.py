# sansmidreg: a sans-IO SIP mid-registrar. Bytes and time in, actions out (DESIGN.md §2).
from ._actions import Action, ArmTimer, Branch, Drop, Endpoint, Fork, Reply, SendRequest, SendUpstream, Transport
from ._config import Config, Mode, NatPolicy, parse_endpoint
from ._core import MidRegistrar
from ._errors import UsageError
from ._ids import IdSource, SeededIds, SystemIds
from ._stats import Stats

__all__ = [
    "Action",
    "ArmTimer",
    "Branch",
    "Config",
    "Drop",
    "Endpoint",
    "Fork",
    "IdSource",
    "MidRegistrar",
    "Mode",
    "NatPolicy",
    "Reply",
    "SeededIds",
    "Stats",
    "SendRequest",
    "SendUpstream",
    "SystemIds",
    "Transport",
    "UsageError",
    "parse_endpoint",
]
__version__ = "0.1.0"
