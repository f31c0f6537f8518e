"""Pure work done in a process of its own, beside the bot's: the 通报's chart, drawn while the bot writes its workbook.

Drawing and writing are Python holding the interpreter's lock: in two threads they take turns, in two processes they
run side by side on two cores. :class:`Apart` keeps one such process. It is started at the first call, not with the
bot, and then kept for the bot's life: later calls find the plotting library imported and its font loaded, as a
chart drawn in the bot's own process would. It ends when the bot closes it, or when the bot's process ends (its
standard input then closes).

The process is the same Python with the bot's module path (a checkout or an installed package alike), not started from
the working directory (``-P``). Each call goes in on its standard input and its answer comes out on a pipe of its own,
both pickled and each after its length; whatever the work prints goes to the bot's standard error. ``multiprocessing``
is not used: its new processes import the bot's main script again, which imports the whole bot. Calls are taken one at a
time.

Where no process can be started (a locked-down host), or it dies, the work is done in a thread instead and a warning
says so: the result is the same, only later. The next call starts a new process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import struct
import sys
import traceback
from collections.abc import Callable
from typing import IO, Any, TypeVar, cast

log = logging.getLogger(__name__)

T = TypeVar("T")
_OK, _RAISED = "ok", "raised"
_SIZE = struct.Struct(">Q")  # a call's or an answer's length, before it
CLOSE_WAIT = 5.0  # seconds a closed process has to end before it is killed
# the new process: the bot's module path first, then the calls
_CHILD = (
    "import pickle, sys; sys.path[:] = pickle.load(sys.stdin.buffer); from bot.services.apart import _serve; _serve()"
)


class ApartFailed(RuntimeError):
    """The process ended or answered with something that is not an answer."""


class Apart:
    """One process beside the bot's for pure work (:meth:`run`); started at the first call, kept until :meth:`close`."""

    def __init__(self) -> None:
        self._child: asyncio.subprocess.Process | None = None
        self._answers: asyncio.StreamReader | None = None
        self._pipe: asyncio.BaseTransport | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The process's id while it runs, else None."""
        return self._child.pid if self._child is not None and self._child.returncode is None else None

    async def run(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` in the process; its result here, or the exception it raised raised here.
        ``function`` is a module's own function, its arguments and its result picklable. In a thread if no process
        can do it."""
        name = getattr(function, "__qualname__", repr(function))
        call = pickle.dumps((function, args, kwargs), pickle.HIGHEST_PROTOCOL)
        async with self._lock:
            try:
                child = await self._started()
            except OSError as failed:
                log.warning("no process could be started for %s (%s): done in a thread", name, failed)
                return await asyncio.to_thread(function, *args, **kwargs)
            try:
                status, value = await self._call(child, call)
            except (ApartFailed, OSError) as failed:
                code = await self._stopped(CLOSE_WAIT)
                log.warning("the process for %s failed (%s, exit %s): done in a thread", name, failed, code)
                return await asyncio.to_thread(function, *args, **kwargs)
            except BaseException:  # cancelled mid-call: its answer would be taken for the next call's
                await self._stopped(0)
                raise
        if status == _RAISED:
            raise cast(BaseException, value)
        return cast(T, value)

    async def close(self) -> None:
        """Ends the process: its input closed, killed if it has not ended within :data:`CLOSE_WAIT`."""
        async with self._lock:
            await self._stopped(CLOSE_WAIT)

    async def _started(self) -> asyncio.subprocess.Process:
        if self._child is not None and self._child.returncode is None:
            return self._child
        read, write = os.pipe()  # the answers' pipe: the work may print to the standard output
        try:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-P",
                "-c",
                _CHILD,
                str(write),
                stdin=asyncio.subprocess.PIPE,
                stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else None,
                pass_fds=(write,),
            )
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        self._child, self._answers = child, asyncio.StreamReader()
        reader = asyncio.StreamReaderProtocol(self._answers)
        self._pipe, _ = await asyncio.get_running_loop().connect_read_pipe(lambda: reader, os.fdopen(read, "rb"))
        assert child.stdin is not None
        child.stdin.write(pickle.dumps(sys.path))
        return child

    async def _call(self, child: asyncio.subprocess.Process, call: bytes) -> tuple[str, Any]:
        assert child.stdin is not None  # set with the process, as the answers' reader is
        assert self._answers is not None
        try:
            child.stdin.write(_SIZE.pack(len(call)) + call)
            await child.stdin.drain()
            (size,) = _SIZE.unpack(await self._answers.readexactly(_SIZE.size))
            data = await self._answers.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError) as ended:
            raise ApartFailed("it ended") from ended
        try:
            status, value = pickle.loads(data)
        except Exception as bad:  # noqa: BLE001 - what does not unpickle is no answer
            raise ApartFailed(f"its answer could not be read: {bad!r}") from bad
        return status, value

    async def _stopped(self, grace: float) -> int | None:
        """Ends the process: its input closed, killed if it has not ended within ``grace`` seconds (one that has
        ended is not sent a signal: that would reap it before asyncio's watcher does); its exit status."""
        child, self._child = self._child, None
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()
        if child is None:
            return None
        if child.stdin is not None:
            child.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(child.wait()), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        return await child.wait()


def _has_fileno(stream: IO[str]) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):  # a test's captured stream
        return False
    return True


def _serve() -> None:
    """In the new process: calls read from standard input until it closes, each answer (its result, or the exception
    it raised, or the one raised taking the call in) written to the answers' pipe."""
    calls, answers = sys.stdin.buffer, os.fdopen(int(sys.argv[1]), "wb")
    while len(head := calls.read(_SIZE.size)) == _SIZE.size:
        (size,) = _SIZE.unpack(head)
        if len(call := calls.read(size)) < size:
            break
        try:
            function, args, kwargs = pickle.loads(call)  # a module the call names may fail to import here
            answer: tuple[str, Any] = (_OK, function(*args, **kwargs))
        except Exception as raised:  # noqa: BLE001 - handed back to the caller, who raises it
            raised.add_note(f"in the process apart:\n{traceback.format_exc()}")
            answer = (_RAISED, raised)
        try:
            data = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - an exception or result that cannot be pickled is told by its text
            data = pickle.dumps((_RAISED, RuntimeError(repr(answer[1]))), pickle.HIGHEST_PROTOCOL)
        answers.write(_SIZE.pack(len(data)) + data)
        answers.flush()
