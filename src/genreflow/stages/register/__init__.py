"""Last stage, register: the best run by validation becomes a registry version.

The alias ``champion`` moves to the new version only when it wins on equal terms:
both the candidate and the current champion are evaluated on *this* validation
split, from raw audio, through the same path ``mlflow models serve`` uses, and the
candidate's gain in accuracy must be above 0 over its whole bootstrap interval (paired
over the validation tracks). A champion trained on other data, another split or other
classes cannot be compared there, so it never blocks a candidate trained on the current
data. The test split is evaluated for the record, never used to decide.

One module per step, :func:`~.stage.register_best` runs them in order:
:mod:`.select` (the best run within the latency budget), :mod:`.score` (validation from raw
audio with per-track outcomes; test for the record; :mod:`.interval`, the bootstrap),
:mod:`.champion` (who holds ``@champion`` and whether it can be compared), :mod:`.decide`
(the rule, against the champion that holds the alias at that moment) and :mod:`.publish`
(the audio model, the version, the alias, ``register.json``).
"""

from genreflow.stages.register.stage import register_best

__all__ = ["register_best"]
