"""The course around the notebooks: ``exercises`` (the checks of "Your turn"), ``solutions``
(one per exercise, revealed and checked in the notebooks) and helpers that drive a scenario in a
running lab (``check_in``)."""
