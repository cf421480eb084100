"""Labels for new images without a new game (docs/method.md §9, the paper's future work).

A label model learns, per layer, which channels carry which labels from the labelled (merged)
cluster maps of the played images, and labels the cluster maps of any new image explained with
the same CNN and extraction settings:

- :mod:`~inviz.transfer.config` — the ``transfer`` params section;
- :mod:`~inviz.transfer.maps` — labelled maps as channel-weight vectors (read from the pipeline);
- :mod:`~inviz.transfer.model` — the variants (``channel_vote``, ``nearest_maps``) and :class:`LabelModel`;
- :mod:`~inviz.transfer.evaluate` / :mod:`~inviz.transfer.report` — leave-one-image-out against baselines;
- :mod:`~inviz.transfer.apply` — transferred labels of new images' cluster maps, merged as §3.8;
- :mod:`~inviz.transfer.more_images` — the unplayed test-pool images for the global explanations;
- :mod:`~inviz.transfer.store` — the ``data/transfer`` folder;
- :mod:`~inviz.transfer.run` — the ``transfer`` stage in one call;
- :mod:`~inviz.transfer.new_images` — ``inviz explain``: a labelled INV of any image file in seconds.
"""
