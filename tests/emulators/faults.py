"""faults.py - runtime fault injection for the test emulators.

A Faults object holds rules that tests add while a server runs; the server
(httpbase.EmulatorServer) asks it, for every request, how long to wait
(delay_for) and whether to misbehave (take). Rules match on the request's
method and a regex searched in its decoded path (or in what the server's
fault_path() names, e.g. /secretsmanager.GetSecretValue for AWS's POST /),
fire a bounded number of times (n=None: forever) and are consumed in the
order they were added, so

    faults.fail_next(2, 503)          two 503s, then normal answers
    faults.fail_next(1, 429, retry_after=1, path=r"/data/")
    faults.drop_next()                close the socket, no response
    faults.drop_next(after_handling=True)  do the request, lose the answer
    faults.hang_next(seconds=30)      say nothing for 30 s, then close
    faults.garbage_next(1, "not-json")    200 whose body is not JSON
    faults.huge_next(1, size=5 << 20)     200 with a 5 MiB body
    faults.latency(0.5, path=r"^/v1/secret/")   every matching request

All methods are thread-safe: tests call them while server threads serve.
Nothing here knows any provider's protocol: a server turns a fired rule
into bytes (error bodies, garbage presets, huge bodies) itself.
"""

import re
import threading

MiB = 1 << 20

KINDS = ("status", "drop", "hang", "garbage", "huge")


class Rule:
    """One fault: kind, how many more times it fires, what it matches."""

    def __init__(self, kind, n, path=None, method=None, **params):
        if n is not None and n < 1:
            raise ValueError("n must be >= 1 or None (forever)")
        self.kind = kind
        self.remaining = n
        self.path = re.compile(path) if isinstance(path, str) else path
        if isinstance(method, str):
            method = [method]
        self.methods = {m.upper() for m in method} if method else None
        self.params = params
        self.fired = 0

    def matches(self, method, path):
        if self.remaining == 0:
            return False
        if self.methods is not None and method.upper() not in self.methods:
            return False
        return self.path is None or self.path.search(path) is not None

    def __getattr__(self, name):
        try:
            return self.__dict__["params"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self):
        where = self.path.pattern if self.path else "*"
        return (f"Rule({self.kind}, remaining={self.remaining}, path={where!r},"
                f" {self.params})")


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._rules = []
        self._latency = []
        self.history = []       # (kind, method, path) of every fired rule

    # ------------------------------------------------------- adding rules

    def _add(self, rule):
        with self._lock:
            (self._latency if rule.kind == "latency" else self._rules).append(rule)
        return rule

    def fail_next(self, n=1, status=503, message=None, *, retry_after=None,
                  headers=None, body=None, content_type=None, path=None,
                  method=None):
        """Answer the next n matching requests with status. The body is the
        server's error shape for that status (message overrides its text),
        or body (bytes) verbatim, sent as content_type (default JSON).
        retry_after adds a Retry-After header."""
        hdrs = list((headers or {}).items())
        if retry_after is not None:
            hdrs.append(("Retry-After", str(retry_after)))
        return self._add(Rule("status", n, path, method, status=status,
                              message=message, headers=hdrs, body=body,
                              content_type=content_type))

    def rate_limit_next(self, n=1, retry_after=None, **kw):
        return self.fail_next(n, 429, retry_after=retry_after, **kw)

    def drop_next(self, n=1, *, after_handling=False, path=None, method=None):
        """Close the connection without a response. after_handling=True
        performs the request first (a write lands) and loses the answer."""
        return self._add(Rule("drop", n, path, method,
                              after_handling=after_handling))

    def hang_next(self, n=1, seconds=30.0, *, path=None, method=None):
        """Read the request, send nothing for seconds, then close."""
        return self._add(Rule("hang", n, path, method, seconds=seconds))

    def garbage_next(self, n=1, kind="not-json", *, body=None, status=200,
                     content_type="application/json", path=None, method=None):
        """Answer with a body the client cannot use: kind names one of the
        server's presets (garbage_body), or body gives the bytes."""
        return self._add(Rule("garbage", n, path, method, garbage=kind,
                              body=body, status=status,
                              content_type=content_type))

    def huge_next(self, n=1, size=5 * MiB, *, path=None, method=None):
        """Answer 200 with a well-formed body of about size bytes."""
        return self._add(Rule("huge", n, path, method, size=size))

    def latency(self, seconds, *, path=None, method=None, n=None):
        """Delay matching requests by seconds before anything else (n=None:
        until cleared). Several matching latency rules add up."""
        return self._add(Rule("latency", n, path, method, seconds=seconds))

    def remove(self, rule):
        with self._lock:
            for lst in (self._rules, self._latency):
                if rule in lst:
                    lst.remove(rule)

    def clear(self):
        with self._lock:
            self._rules.clear()
            self._latency.clear()

    def pending(self):
        """How many one-shot firings are still armed (forever rules: -1)."""
        with self._lock:
            if any(r.remaining is None for r in self._rules):
                return -1
            return sum(r.remaining for r in self._rules)

    # ---------------------------------------------------- for the servers

    def delay_for(self, method, path):
        total = 0.0
        with self._lock:
            for r in self._latency:
                if r.matches(method, path):
                    total += r.seconds
                    self._consume(r)
            self._latency = [r for r in self._latency if r.remaining != 0]
        return total

    def take(self, method, path):
        """The first armed rule matching this request, consumed; or None."""
        with self._lock:
            for r in self._rules:
                if r.matches(method, path):
                    self._consume(r)
                    self.history.append((r.kind, method, path))
                    if r.remaining == 0:
                        self._rules.remove(r)
                    return r
        return None

    @staticmethod
    def _consume(rule):
        rule.fired += 1
        if rule.remaining is not None:
            rule.remaining -= 1
