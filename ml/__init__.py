"""Rustwatch machine learning: pure Python + Keras, no Django.

Importing `ml` (or `ml.voc`) must stay cheap: TensorFlow is imported only by
the modules that train or predict, so the web process can read and write VOC
without loading it.
"""
