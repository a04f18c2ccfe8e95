"""Hold one thread of a running process back while its other threads go on
(Linux ptrace, stdlib ctypes), and find bollard's threads by name.

What happens while one worker thread has not yet done something the
others did (taken a reload, say) is a race on a quick machine; stopping
that one worker makes the moment last as long as the test needs:
PTRACE_SEIZE then PTRACE_INTERRUPT stop that thread alone, and
PTRACE_DETACH lets it go on from where it was, as if it had been slow.
The tracer is the calling Python thread: every call below must come from
the same thread (pytest's). It needs the right to trace the process: its
parent under Yama ptrace_scope 1, or root. Detach before stopping the
process: a thread still held keeps it from exiting, and LeakSanitizer,
which traces every thread at exit, cannot trace one we hold.
"""

import contextlib
import ctypes
import errno
import os
import time
from pathlib import Path

import util

PTRACE_CONT = 7
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_EVENT_STOP = 128
WALL = 0x40000000  # __WALL: wait for a thread that is not a child, too

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long


def _ptrace(req, tid, data=0):
	if _libc.ptrace(req, tid, None, ctypes.c_void_p(data)) < 0:
		e = ctypes.get_errno()
		raise OSError(e, "ptrace(%d, %d): %s" % (req, tid, os.strerror(e)))


def thread_ids(pid, names, timeout=10.0):
	"""{name: tid} for the threads of pid named so (/proc/PID/task/*/comm),
	once every name is there: a thread names itself when it starts, which
	may come after the process answers on its ports."""
	def look():
		found = {}
		for task in Path("/proc/%d/task" % pid).iterdir():
			try:
				found[(task / "comm").read_text().strip()] = int(task.name)
			except (FileNotFoundError, ProcessLookupError):
				pass
		return found if all(n in found for n in names) else None
	found = util.wait_until(look, timeout=timeout, what="threads %s of pid %d" % (names, pid))
	return {n: found[n] for n in names}


def _syscall(pid, tid):
	"""The system call tid waits in and its first argument, or None."""
	try:
		f = Path("/proc/%d/task/%d/syscall" % (pid, tid)).read_text().split()
	except (FileNotFoundError, ProcessLookupError):
		return None
	return (f[0], f[1]) if len(f) > 2 else None  # "running" or "-1 sp pc" otherwise


def _idle_wait(pid, tid, timeout):
	"""The (system call, descriptor) an idle event-loop thread sleeps in:
	its epoll wait, seen once from outside."""
	def look():
		sc = _syscall(pid, tid)
		if not sc:
			return None
		try:
			fd = int(sc[1], 16)
			return sc if os.readlink("/proc/%d/fd/%d" % (pid, fd)) == "anon_inode:[eventpoll]" \
				else None
		except (OSError, ValueError):
			return None
	return util.wait_until(look, timeout=timeout, what="thread %d idle in its epoll wait" % tid)


def _wait_stop(tid, deadline):
	"""Wait (bounded) for tid's PTRACE_INTERRUPT stop; a signal meanwhile
	is handed on to it. Raises if the thread exits."""
	while True:
		got, status = os.waitpid(tid, WALL | os.WNOHANG)
		if got == tid:
			if not os.WIFSTOPPED(status):
				raise AssertionError("thread %d ended while held (status %#x)" % (tid, status))
			if status >> 16 == PTRACE_EVENT_STOP:
				return
			_ptrace(PTRACE_CONT, tid, os.WSTOPSIG(status))  # a signal-delivery stop
		elif time.monotonic() >= deadline:
			raise AssertionError("thread %d did not stop" % tid)
		else:
			time.sleep(0.005)


@contextlib.contextmanager
def held(pid, tid, timeout=10.0):
	"""Stop thread tid of pid for the body of the with, then let it go on.
	It is stopped while it sleeps in its event loop's epoll wait, never in
	the middle of work, where it could hold what the other threads need
	(a lock, a half-written log line): when the interrupt finds it busy it
	is let go, and interrupted again once it sleeps there, within timeout.
	The thread is let go however the body ends."""
	deadline = time.monotonic() + timeout
	idle = _idle_wait(pid, tid, timeout)
	_ptrace(PTRACE_SEIZE, tid)
	stopped = False
	try:
		while True:
			_ptrace(PTRACE_INTERRUPT, tid)
			_wait_stop(tid, deadline)
			stopped = True
			if _syscall(pid, tid) == idle:
				break
			if time.monotonic() >= deadline:
				raise AssertionError("thread %d never found idle in %s" % (tid, idle))
			stopped = False
			_ptrace(PTRACE_CONT, tid)
			util.wait_until(lambda: _syscall(pid, tid) == idle,
					timeout=max(deadline - time.monotonic(), 0.0),
					what="thread %d idle again" % tid)
		yield
	finally:
		try:
			if not stopped:
				_ptrace(PTRACE_INTERRUPT, tid)
				_wait_stop(tid, time.monotonic() + timeout)
			_ptrace(PTRACE_DETACH, tid, 0)
		except OSError as e:
			if e.errno != errno.ESRCH:  # the process is gone: nothing to let go
				raise

