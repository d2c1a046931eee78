"""Course tooling: broker provisioning, the pytest plugin, fault injection and grading.

Students never need to read this package; it keeps the lesson and task folders plain.
"""
