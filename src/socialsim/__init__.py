"""socialsim: simulate emotional-support conversations with social disclosure and awareness.

The Python API (`socialsim.api`) is re-exported here: `Backend`, `load_personas`, `simulate`,
`asimulate`, `resume`, `open_run`, `evaluate`, `export` and `screen`.
"""

import sys
import types
from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"

from socialsim.api import (  # noqa: E402 - the version first: every module may read it
    Backend,
    EvaluationResult,
    ParamError,
    PersonaBank,
    Run,
    UserError,
    asimulate,
    evaluate,
    export,
    load_personas,
    open_run,
    resume,
    screen,
    simulate,
)

__all__ = [
    "Backend",
    "EvaluationResult",
    "ParamError",
    "PersonaBank",
    "Run",
    "UserError",
    "__version__",
    "asimulate",
    "evaluate",
    "export",
    "load_personas",
    "open_run",
    "resume",
    "screen",
    "simulate",
]

# `socialsim.simulate` and `socialsim.evaluate` are both API functions and subpackages. Importing a
# subpackage binds it on this package under the same name, so the import system would replace the
# function with the module. Instead, the module bound there is made callable as the function: both
# `socialsim.simulate(...)` and `import socialsim.simulate.run` keep working, in any import order.
_CALLABLE_SUBPACKAGES: dict[str, Callable[..., Any]] = {"simulate": simulate, "evaluate": evaluate}


def _callable_module_type(fn: Callable[..., Any]) -> type[types.ModuleType]:
    def __call__(self: types.ModuleType, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    import inspect

    sig = inspect.signature(fn)
    own = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    __call__.__doc__ = fn.__doc__
    __call__.__signature__ = sig.replace(parameters=[own, *sig.parameters.values()])  # type: ignore[attr-defined]
    return type(f"CallableModule[{fn.__name__}]", (types.ModuleType,), {"__call__": __call__})


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        fn = _CALLABLE_SUBPACKAGES.get(name)
        if fn is not None and type(value) is types.ModuleType:
            value.__class__ = _callable_module_type(fn)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
for _name in _CALLABLE_SUBPACKAGES:  # a subpackage imported before this line (it cannot be, but be sure)
    _sub = sys.modules.get(f"{__name__}.{_name}")
    if _sub is not None:
        setattr(sys.modules[__name__], _name, _sub)
