# Entry points. Everything works from a fresh clone on a fresh machine:
#   make demo    the demo stack up, then the collection's main job against it
#   make test    every lint, sanity, unit, integration, Molecule and upgrade test
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
COLLECTION_LINK := build/collections/ansible_collections/edms/backup
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv collection collection-deps stack-up stack-down lims-up lims-down browser demo test lint sanity unit host-prep integration molecule upgrade kill-subset

help:
	@echo "make demo        bring up the demo stack and run the main job against it"
	@echo "make test        lint, sanity, unit, integration and Molecule tests (brings the stack up)"
	@echo "make stack-up    the demo stack from nothing (engine, images, stack, seed)"
	@echo "make stack-down  remove the demo stack's containers, networks and volumes"
	@echo "make lims-up     the second reference stack (lims/, PostgreSQL 18) from nothing"
	@echo "make lims-down   remove the LIMS stack's containers, networks and volumes"
	@echo "make lint | sanity | unit | host-prep | integration | molecule | upgrade | kill-subset"

$(BIN)/activate: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(BIN)/activate

# awx.awx, for awx/configure.yml (lint, syntax check), beside the link below.
AWX_COLLECTION := build/collections/ansible_collections/awx/awx/MANIFEST.json
collection-deps: $(AWX_COLLECTION)
$(AWX_COLLECTION): tools/collection-deps.sh | venv
	tools/collection-deps.sh

# Ansible finds the collection through this link (see ansible.cfg).
collection: $(COLLECTION_LINK)
$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../../.. $@

stack-up:
	demo/bin/stack up

stack-down:
	demo/bin/stack down

lims-up:
	lims/bin/stack up

lims-down:
	lims/bin/stack down

# The main job on the demo stack: preflight, storage, a verified backup, its verification, a rehearsal, the catalogue page.
demo: venv collection stack-up
	$(BIN)/ansible-playbook -i inventories/demo playbooks/site.yml

lint: venv collection collection-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint

sanity: venv
	tools/sanity.sh

# The catalogue test opens the page in headless Chromium (tests/integration/test_catalogue.py).
browser:
	@command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

unit: venv collection collection-deps
	$(BIN)/pytest -q tests/unit

# Host preparation (tests/host): playbooks/prepare_host.yml for real on this
# machine (local connection) into a temporary virtual environment, then the
# modules with and without it. No Docker; pip needs its package index.
host-prep: venv collection
	$(BIN)/pytest -q tests/host

integration: venv collection browser stack-up lims-up
	$(BIN)/pytest -q tests/integration

molecule: venv collection stack-up lims-up
	$(BIN)/molecule test --all

# The demo on PostgreSQL 15 (Debian's), the whole cycle there, then its
# archive restored on PostgreSQL 18: the upgrade operators make. It takes the
# demo down and leaves it up again on 18.
upgrade: venv collection
	$(BIN)/pytest -q tests/upgrade

# The kill campaign's seeded subset (tests/faults, docs/testing.md): four
# runs killed at seeded points, the Docker engine restarted in one of them.
kill-subset: venv collection stack-up
	EDMS_KILL_SUBSET=1 $(BIN)/pytest -q tests/faults

test: lint sanity unit host-prep integration molecule upgrade kill-subset
