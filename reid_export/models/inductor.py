"""What torch's inductor compiler needs from this machine, below both of its users: `verified.aot` asks before
compiling a `.pt2` ahead of time (`export.aot`), and the `torch-compile` runtime before compiling on activate."""

from __future__ import annotations

from ..errors import RuntimeUnavailable

__all__ = ["inductor_compiler"]


def inductor_compiler() -> str:
    """The C++ compiler inductor will use; RuntimeUnavailable naming what it looked for when there is none."""
    from torch._inductor import config
    from torch._inductor.cpp_builder import get_cpp_compiler
    from torch._inductor.exc import InvalidCxxCompiler

    try:
        return get_cpp_compiler()
    except InvalidCxxCompiler:
        looked_for = ", ".join(str(c) for c in (config.cpp.cxx if isinstance(config.cpp.cxx, (list, tuple))
                                                else (config.cpp.cxx,)) if c)
        raise RuntimeUnavailable(f"torch inductor needs a C++ compiler and found none (looked for {looked_for}); "
                                 "install one (apt-get install g++) or set $CXX, or use the torch runtime") from None
