# Entry points. Everything works from a fresh clone on a fresh machine:
#   make demo    the demo stack up, then the collection's main job against it
#   make test    every lint, sanity, unit, packaging, host-preparation, integration, Molecule and upgrade test, and the kill subset
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv collection collection-deps stack-up stack-down lims-up lims-down browser age-cli demo test lint sanity unit packaging host-prep ssh integration molecule upgrade kill-subset

help:
	@echo "make demo        bring up the demo stack and run the main job against it"
	@echo "make test        lint, sanity, unit, packaging, host-prep, ssh, integration, Molecule, upgrade and kill-subset tests (brings the stacks up)"
	@echo "make stack-up    the demo stack from nothing (engine, images, stack, seed)"
	@echo "make stack-down  remove the demo stack's containers, networks and volumes"
	@echo "make lims-up     the second reference stack (lims/, PostgreSQL 18) from nothing"
	@echo "make lims-down   remove the LIMS stack's containers, networks and volumes"
	@echo "make lint | sanity | unit | packaging | host-prep | ssh | integration | molecule | upgrade | kill-subset"

$(BIN)/activate: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(BIN)/activate

# awx.awx, for awx/configure.yml (lint, syntax check), in build/collections
# (the second entry of ansible.cfg's collections_path).
AWX_COLLECTION := build/collections/ansible_collections/awx/awx/MANIFEST.json
collection-deps: $(AWX_COLLECTION)
$(AWX_COLLECTION): tools/collection-deps.sh | venv
	tools/collection-deps.sh

# Nothing to make any more: Ansible finds edms.backup through the links
# committed in collections/ansible_collections/edms/backup (see ansible.cfg).
# Kept for the commands that still name it; it removes the link to the whole
# repository that older checkouts made in build/collections.
OLD_COLLECTION_LINK := build/collections/ansible_collections/edms/backup
collection:
	@if [ -L $(OLD_COLLECTION_LINK) ]; then rm -f $(OLD_COLLECTION_LINK); echo "removed the old link $(OLD_COLLECTION_LINK)"; fi
	@test -f collections/ansible_collections/edms/backup/galaxy.yml || { echo "collections/ansible_collections/edms/backup: links missing (git checkout?)" >&2; exit 1; }

stack-up:
	demo/bin/stack up

stack-down:
	demo/bin/stack down

lims-up:
	lims/bin/stack up

lims-down:
	lims/bin/stack down

# The main job on the demo stack: preflight, storage, a verified backup, its verification, a rehearsal, the catalogue page.
demo: venv stack-up
	$(BIN)/ansible-playbook -i inventories/demo playbooks/site.yml

lint: venv collection-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint
	$(BIN)/antsibull-changelog lint

sanity: venv
	tools/sanity.sh

# The catalogue test opens the page in headless Chromium (tests/integration/test_catalogue.py).
browser:
	@command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# The encryption tests check that the age command reads what the collection writes and the other way round.
age-cli:
	@command -v age >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q age; }

unit: venv collection-deps age-cli
	$(BIN)/pytest -q tests/unit

# A fresh clone of HEAD and the built, installed tarball, each syntax-checking
# every playbook against inventories/staging (tests/install; no Docker, no
# connection to any host). Commit first: the clone is of HEAD.
packaging: venv
	$(BIN)/pytest -q tests/install


# Host preparation (tests/host): playbooks/prepare_host.yml for real on this
# machine (local connection) into a temporary virtual environment, then the
# modules with and without it. No Docker; pip needs its package index.
host-prep: venv
	$(BIN)/pytest -q tests/host

# The operators' path over real SSH (tests/ssh): a user lims, an sshd of its
# own on 127.0.0.1:2222 and a Compose project edms-ssh in lims's home, made
# and removed by the tests (root; openssh-server and sudo installed). The
# whole cycle as lims, and a killed run's lock. About 3 minutes.
ssh: venv stack-up
	$(BIN)/pytest -q tests/ssh

integration: venv browser age-cli stack-up lims-up
	$(BIN)/pytest -q tests/integration

molecule: venv stack-up lims-up
	$(BIN)/molecule test --all

# The demo on PostgreSQL 15 (Debian's), the whole cycle there, then its
# archive restored on PostgreSQL 18: the upgrade operators make. It takes the
# demo down and leaves it up again on 18.
upgrade: venv
	$(BIN)/pytest -q tests/upgrade

# The kill campaign's seeded subset (tests/faults, docs/testing.md): four
# runs killed at seeded points, the Docker engine restarted in one of them.
kill-subset: venv stack-up
	EDMS_KILL_SUBSET=1 $(BIN)/pytest -q tests/faults

test: lint sanity unit packaging host-prep ssh integration molecule upgrade kill-subset
