"""The fault matrix: every error the delivery path's AWS calls can meet, generated from botocore's own data.

``catalogue`` is the public face (faults, cells, samples); ``botocore_data``, ``wire`` and ``transport`` are its
parts: what botocore's models and retry rules say, HTTP errors parsed by a real (offline) botocore client, and the
failures aiobotocore raises when no HTTP answer arrives.
"""
