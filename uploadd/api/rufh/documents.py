"""The draft's fields and problem documents: where an upload stands
(``Upload-Complete``/``Upload-Incomplete``, ``Upload-Offset``), its limits
(``Upload-Limit``), and refusals worded with the draft's problem types, each
as the request's interop version has them."""

from __future__ import annotations

import attrs
from twisted.internet.interfaces import IReactorTime

from uploadd import errors
from uploadd.api import fields
from uploadd.api.problems import Problem, bad_request, problem_of
from uploadd.api.rufh.versions import INTEROP, PROBLEMS, Interop
from uploadd.store.interface import UploadRecord
from uploadd.uploads import rules


@attrs.frozen
class Documents:
    """What the draft's answers say of limits and refusals: ``max_size`` of
    an upload, ``lifetime`` of an idle one (seconds), the append limits."""

    max_size: int
    lifetime: float
    _clock: IReactorTime
    max_append_size: int = 0
    min_append_size: int = 0

    def limits(
        self, interop: Interop, record: UploadRecord | None = None
    ) -> str | None:
        """The ``Upload-Limit`` field for ``interop`` (None where it has none)."""
        if not interop.limits:
            return None
        members = [("min-size", 0), ("max-size", self.max_size)]
        if self.max_append_size:
            members.append(("max-append-size", self.max_append_size))
        if self.min_append_size:
            members.append(("min-append-size", self.min_append_size))
        if record is None:
            age = self.lifetime
        elif record.state == rules.OPEN and record.expires_at is not None:
            age = record.expires_at - self._clock.seconds()
        else:
            age = None
        if age is not None:
            members.append((interop.age_key, max(0, int(age))))
        return fields.dictionary(members)

    def state(
        self,
        interop: Interop,
        complete: bool,
        record: UploadRecord | None = None,
        offset: bool = True,
    ) -> list[tuple[str, str]]:
        """The draft's fields saying where an upload stands."""
        found: list[tuple[str, str]] = [(INTEROP, str(interop.version))]
        if interop.incomplete_field:
            found.append(("Upload-Incomplete", fields.boolean_value(not complete)))
        else:
            found.append(("Upload-Complete", fields.boolean_value(complete)))
        if record is not None and offset:
            found.append(("Upload-Offset", str(record.received)))
        limit = self.limits(interop, record)
        if limit is not None and not complete:
            found.append(("Upload-Limit", limit))
        return found

    def problem(
        self,
        error: Problem | errors.UploaddError,
        interop: Interop | None,
        provided: int | None = None,
    ) -> Problem:
        """The draft's document for a refusal: its problem types, and the
        fields saying the upload is not complete (and the limits on a 413)."""
        problem = error if isinstance(error, Problem) else problem_of(error)
        if interop is None:
            return problem
        headers = dict(problem.headers)
        headers.update(self.state(interop, False, offset=False))
        if isinstance(error, errors.Conflict) and error.offset is not None:
            extra = {k: v for k, v in problem.extra.items() if k != "offset"}
            extra["expected-offset"] = error.offset
            if provided is not None:
                extra["provided-offset"] = provided
            headers["Upload-Offset"] = str(error.offset)
            return attrs.evolve(
                problem,
                title="offset from request does not match offset of resource",
                type=PROBLEMS + "mismatching-upload-offset",
                headers=headers,
                extra=extra,
            )
        if problem.status != 413:
            headers.pop("Upload-Limit", None)
        if isinstance(error, errors.InconsistentLength):
            return attrs.evolve(
                problem,
                title="inconsistent length values for upload",
                type=PROBLEMS + "inconsistent-upload-length",
                headers=headers,
            )
        return attrs.evolve(problem, headers=headers)

    def inconsistent(self, detail: str, interop: Interop) -> Problem:
        return attrs.evolve(
            self.problem(bad_request(detail), interop),
            title="inconsistent length values for upload",
            type=PROBLEMS + "inconsistent-upload-length",
        )

    def completed(self, record: UploadRecord, interop: Interop) -> Problem:
        problem = self.problem(
            bad_request(f"upload {record.id} is complete and takes no more bytes"),
            interop,
        )
        return attrs.evolve(
            problem,
            title="upload is already completed",
            type=PROBLEMS + "completed-upload",
        )
