"""Domain logic: every write to the inspection records goes through these modules.

- catalog: assets and inspections (create, update, delete when empty)
- photos: ingest (validation, EXIF, hashes, near-duplicates), verdicts, thumbnails
- boxes: saving a photo's boxes, reviewing model suggestions
- voc_io: Pascal VOC import (folders, zips) and export (zips)
- tokens: API tokens (issue, rotate, revoke)
- history / voc_files: the audit trail and the labelImg XML beside each image
"""
