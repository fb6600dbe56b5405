"""The item index: exact or IVF search over the learner's item vectors, with exclusions.

Empty on purpose: `index.factory.make_index` builds the one a setting names.
"""
