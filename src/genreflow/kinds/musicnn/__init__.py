"""The musicnn kind: a pretrained front-end (``net``, ``front``, ``band``) and a trained top
(``top``); the kind itself is ``kind``."""
