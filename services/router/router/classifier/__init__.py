"""The trained classifier: a statistical model of category and priority beside the rules.

`corpus` (the labelled messages, shipped), `features` (how text becomes features),
`model` (a trained model: load, predict with reasons), `train` (`python -m
router.classifier.train`, `make train`), `store` (model versions on disk, promotion).
scikit-learn is imported only here, never by `router.domain`."""
