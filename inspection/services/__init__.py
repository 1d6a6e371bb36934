"""Domain logic: every write to the inspection records goes through these modules.

- catalog: assets and inspections (create, update, delete when empty)
- photos: ingest (validation, EXIF, hashes, near-duplicates), verdicts, thumbnails
- boxes: saving a photo's boxes, reviewing model suggestions (who may review: one rule),
  the verdict a rust box implies
- dataset_io: import and export of annotated photo sets (`format` voc, coco, yolo), over
  archives (zip safety) and one module per format: voc_io, coco_io, yolo_io
- tokens: API tokens (issue, rotate, revoke)
- history / voc_files: the audit trail and the labelImg XML beside each image (written
  from the rows under the row lock; `check_voc` compares and repairs)
- media: files under MEDIA_ROOT, written atomically (temp file, fsync, rename)
"""
