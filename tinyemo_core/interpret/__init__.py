"""The Metric Projector as an interpretability instrument (TinyEmo §IV-G, §V-C, Appendix E).

``activations`` (layer-0 read-out), ``atlas`` (top-k images, detection rates), ``ablation`` (closed-form
single-neuron ablation), ``probing`` (retrieval / concept ranking), ``counterfactual`` (image pairs),
``plots``. Stage functions: ``tinyemo_core.stages.interpret`` and ``tinyemo_core.stages.interpret_atlas``.
Modules are imported on use; this package itself imports nothing heavy.
"""
