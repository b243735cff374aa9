"""Makes the collection importable as ansible_collections.edms.backup.

The repository is the collection; collections/ansible_collections/edms/backup,
committed to git, links to its galaxy.yml, meta, playbooks, plugins and roles
(ansible.cfg's collections_path). Its parent directory goes on sys.path.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, "collections")

if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
