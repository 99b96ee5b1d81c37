"""The client's layers: ``protocol`` (requests and answers, no I/O), ``sessions`` and
``tasks`` (every rule of the selection and task endpoints, as flows, no I/O) and
``drivers`` (the sync and async I/O loops). ``kling_elements.Client`` and
``kling_elements.AsyncClient`` are thin facades over them."""
