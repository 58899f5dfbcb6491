#!/usr/bin/env python3
"""Reference side of the PMF interoperability tests.

Drives the reference implementation (the Python package ``plums`` 0.5.2, module
``plums.model``) through its public API only, so that another implementation of the
Plums Model Format can be compared with it.  Everything printed on stdout is ONE JSON
document; diagnostics go to stderr.  See README.md next to this file for the formats.

Sub-commands::

    reference.py corpus   OUT_DIR                 valid models saved by the reference + recipes
    reference.py invalid  OUT_DIR                 invalid models + the reference's verdicts
    reference.py describe MODEL_DIR [--no-strict] [--no-checkpoints]
    reference.py validate MODEL_DIR [--no-strict] [--no-checkpoints]
    reference.py build    RECIPE_JSON OUT_DIR     rebuild a recipe with the reference API
    reference.py selfcheck TMP_DIR                corpus -> build -> describe both -> compare

Reference bugs found while writing this script, and the cases left out of the corpus
because of them (each was tried with plums 0.5.2):

* Every metadata offence found by ``validate``/``Model.load`` is raised as a
  ``PlumsModelTreeValidationError`` (the ``schema`` library re-wraps the
  ``PlumsModelMetadataValidationError`` raised by the metadata component into a plain
  ``SchemaError`` under the key ``'metadata.yaml'``), so "kind" is "tree" for them.
* ``CheckpointCollection.add`` rejects a reference equal in Python to an existing one:
  ``1`` and ``True`` collide (``KeyError: 'Checkpoint name True already registered: ...'``).
  ``1`` and ``"1"`` are accepted and round-trip (case ``mixed_refs``).
* A checkpoint named ``None`` is saved (``latest: null``, key ``null``) and the saved model
  is then refused: ``PlumsModelTreeValidationError ... Missing key: Or(<class 'str'>,
  <class 'int'>)``.  Left out.
* A one-letter producer name (``a``) is saved, and the saved model is then refused
  (``Invalid name: Expected only alphanumeric characters or "_"and should start with a
  letter.``).  Left out of the corpus (it is in the ``invalid`` set).
* An int model name (or any non-str) is saved and then refused.  Left out.
* ``Checkpoint(name)`` without path nor hash: ``FileNotFoundError: [Errno 2] No such file
  or directory: 'None'``.
* ``Training().register_epoch()`` before ``start``: ``TypeError: unsupported operand
  type(s) for +=: 'NoneType' and 'int'``.
* A file initialisation whose file name has no extension is saved fine and validates,
  but ``Model.load`` crashes (the loader guesses "file" from the extension): ``ValueError:
  It is impossible to left join a file-path: <model>/data/initialisation/weights -\\-
  metadata.yaml.``  Left out.
* ``yaml.safe_dump`` (used by ``save``) sorts mapping keys when they are mutually
  comparable: a checkpoints mapping whose references are all str (or all int) is written
  in sorted order, not in insertion order (``latest`` stays the last inserted one), and so
  is ``data/build_parameters.yaml``.  Kept on purpose: the checkpoint order of the saved
  model differs from the recipe's insertion order in ``many_str_refs``, ``md5_digits``,
  ``sorted_refs_order``, ``yaml_tricky_strings``; the build parameters order differs in
  ``nested_build_params``, ``sorted_refs_order``, ``yaml_tricky_strings``.
* Two checkpoints whose files share a name with different contents silently overwrite
  each other in ``data/checkpoints/`` (the saved model then fails strict validation).
  Left out.  Two references pointing to the SAME input file are kept (case
  ``shared_checkpoint_file``).
* ``validate`` crashes with ``TypeError: argument of type 'NoneType' is not iterable`` when
  the metadata declares an initialisation (file or pmf) and ``data/initialisation/`` is
  empty (cases ``file_init_missing_file``, ``pmf_init_empty_initialisation_dir``: kind
  "other").
* ``validate`` accepts: an unknown producer version format (``Model.load`` then raises
  ``ValueError``), an unparsable ``data/build_parameters.yaml`` (``Model.load`` then raises a ``yaml`` error), checkpoint
  paths that are absolute, escape the root or lie outside ``data/checkpoints/`` (only the
  last path component is looked up), symbolic links pointing outside the root.  These are
  in the ``invalid`` set with "reference wrongly accepts" in their rule.
* Build parameters that ``safe_dump`` cannot represent (tuples, sets, bytes, objects) and
  datetimes are not used (dates are).  Ints are kept within the i64 range.
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback

import yaml

from plums.model import (
    Model, Checkpoint, Training, PlumsModelTreeValidationError, PlumsModelMetadataValidationError,
)
from plums.model.validation import validate as plums_validate


# ------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------
def log(*args):
    print(*args, file=sys.stderr, flush=True)


def emit(document):
    """Print the one JSON document of the run on stdout."""
    sys.stdout.write(json.dumps(document, indent=1, ensure_ascii=True, allow_nan=False))
    sys.stdout.write('\n')
    sys.stdout.flush()


def md5_file(path):
    digest = hashlib.md5()
    with open(str(path), 'rb') as f:
        for block in iter(lambda: f.read(65536), b''):
            digest.update(block)
    return digest.hexdigest()


def tag(value):
    """Encode a YAML-loaded Python value as a TAGGED VALUE (see README.md)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return {'bool': value}
    if isinstance(value, int):
        return {'int': value}
    if isinstance(value, float):
        if math.isnan(value):
            return {'float': 'nan'}
        if math.isinf(value):
            return {'float': 'inf' if value > 0 else '-inf'}
        return {'float': value}
    if isinstance(value, str):
        return {'str': value}
    if isinstance(value, list):
        return {'seq': [tag(v) for v in value]}
    if isinstance(value, dict):
        return {'map': [[tag(k), tag(v)] for k, v in value.items()]}
    if isinstance(value, datetime.datetime):
        return {'timestamp': value.isoformat()}
    if isinstance(value, datetime.date):
        return {'timestamp': value.isoformat()}
    raise TypeError('Cannot tag a value of type {}: {!r}'.format(type(value).__name__, value))


def untag(tagged):
    """Decode a TAGGED VALUE back into the Python value."""
    if tagged is None:
        return None
    if not isinstance(tagged, dict) or len(tagged) != 1:
        raise ValueError('Invalid tagged value: {!r}'.format(tagged))
    (kind, value), = tagged.items()
    if kind == 'bool':
        return bool(value)
    if kind == 'int':
        return int(value)
    if kind == 'float':
        return float(value)  # float('inf'), float('-inf'), float('nan') included
    if kind == 'str':
        return str(value)
    if kind == 'seq':
        return [untag(v) for v in value]
    if kind == 'map':
        return {untag(k): untag(v) for k, v in value}
    if kind == 'timestamp':
        if 'T' in value or ' ' in value:
            return datetime.datetime.fromisoformat(value)
        return datetime.date.fromisoformat(value)
    raise ValueError('Invalid tagged value kind: {!r}'.format(kind))


def number(value):
    """A training time/epoch for JSON: int stays int, float stays float (non finite: a string)."""
    if isinstance(value, float) and not math.isfinite(value):
        return 'nan' if math.isnan(value) else ('inf' if value > 0 else '-inf')
    return value


def error_kind(exc):
    if isinstance(exc, PlumsModelTreeValidationError):
        return 'tree'
    if isinstance(exc, PlumsModelMetadataValidationError):
        return 'metadata'
    return 'other'


def verdict(model_dir, strict=True, checkpoints=True):
    """Run the reference ``validate`` in-process and return a verdict dictionary."""
    try:
        plums_validate(str(model_dir), strict=strict, checkpoints=checkpoints)
    except Exception as e:  # noqa: B902 - any exception is a verdict
        return {'valid': False, 'kind': error_kind(e), 'error': type(e).__name__, 'message': str(e)}
    return {'valid': True, 'kind': None, 'error': None, 'message': None}


# ------------------------------------------------------------------------------------------------
# describe
# ------------------------------------------------------------------------------------------------
def describe_model(model):
    """Describe a loaded reference Model (see README.md)."""
    training = model.training
    configuration = model.producer.configuration
    description = {
        'producer': {
            'name': model.producer.name,
            'version_format': model.producer.version.format,
            'version': str(model.producer.version),
        },
        'name': model.name,
        'id': model.id,
        'configuration': {'file': str(configuration[-1]), 'md5': md5_file(configuration)},
        'build_parameters': tag(model.build_parameters),
        'training': {
            'status': training.status,
            'start_epoch': number(training.start_epoch),
            'start_time': number(training.start_timestamp),
            'latest_epoch': number(training.latest_epoch),
            'latest_time': number(training.latest_timestamp),
            'end_epoch': number(training.end_epoch),
            'end_time': number(training.end_timestamp),
        },
        'checkpoints': [
            {
                'reference': tag(reference),
                'epoch': checkpoint.epoch,
                'hash': checkpoint.hash,
                'file': str(checkpoint.path[-1]) if checkpoint.path is not None else None,
            }
            for reference, checkpoint in model.checkpoint_collection.items()
        ],
        'latest': None,
        'initialisation': None,
    }
    with open(os.path.join(str(model.path), 'metadata.yaml'), 'r') as f:
        metadata = yaml.safe_load(f)
    description['latest'] = tag(metadata['model']['training']['latest'])

    init = model.initialisation
    if isinstance(init, Model):
        description['initialisation'] = {'pmf': {'checkpoint': tag(init.checkpoint), 'model': describe_model(init)}}
    elif isinstance(init, Checkpoint):
        description['initialisation'] = {'file': {
            'name': init.name,
            'hash': init.hash,
            'file': str(init.path[-1]) if init.path is not None else None,
        }}
    elif init is not None:
        raise TypeError('Unexpected initialisation type: {}'.format(type(init).__name__))
    return description


def describe(model_dir, strict=True, checkpoints=True):
    try:
        plums_validate(str(model_dir), strict=strict, checkpoints=checkpoints)
        model = Model.load(str(model_dir), strict=strict, checkpoints=checkpoints)
    except Exception as e:  # noqa: B902
        return {'ok': False, 'error': type(e).__name__, 'kind': error_kind(e), 'message': str(e)}
    return {'ok': True, 'model': describe_model(model)}


# ------------------------------------------------------------------------------------------------
# build (recipe -> reference model)
# ------------------------------------------------------------------------------------------------
def build(recipe, base_dir, out_dir):
    """Rebuild the model described by ``recipe`` (paths relative to ``base_dir``) and save it."""
    def rel(path):
        return os.path.join(str(base_dir), path)

    producer = recipe['producer']
    model = Model(producer['name'], producer['version_format'], producer['version'],
                  recipe['name'], recipe['id'], rel(recipe['configuration']),
                  untag(recipe['build_parameters']))
    t = recipe['training']
    model.training = Training(start_time=t['start_time'], start_epoch=t['start_epoch'],
                              latest_time=t['latest_time'], latest_epoch=t['latest_epoch'],
                              end_time=t['end_time'], end_epoch=t['end_epoch'], status=t['status'])
    for entry in recipe['checkpoints']:
        model.add_checkpoint(Checkpoint(untag(entry['reference']), rel(entry['file']), entry['epoch']))
    init = recipe.get('initialisation')
    if init is not None:
        if 'file' in init:
            model.register_initialisation(rel(init['file']['path']), name=init['file']['name'])
        else:
            model.register_initialisation(rel(init['pmf']['path']),
                                          checkpoint_reference=untag(init['pmf']['checkpoint']))
    model.save(str(out_dir))
    return model


# ------------------------------------------------------------------------------------------------
# corpus
# ------------------------------------------------------------------------------------------------
# Contents whose MD5 is made of digits and one 'e' (a string for YAML 1.1, a float for YAML
# 1.2) and of digits only (PyYAML must quote it); found once by brute force.
MD5_DIGITS_AND_E = b'pmf-interop-103820\n'      # 9149513e859509143579615244484974
MD5_DIGITS_ONLY = b'pmf-interop-4966496\n'      # 94939969898625493398287134525003


class Case(object):
    """A corpus case under construction: inputs written in ``<root>/inputs``."""

    def __init__(self, root):
        self.root = root
        self.producer_version_input = None

    def file(self, rel, content):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(content if isinstance(content, bytes) else content.encode('utf-8'))
        return path

    def path(self, rel):
        return os.path.join(self.root, rel)

    def model(self, producer, version, name, model_id, configuration, build_parameters, version_format='py_pa'):
        """Create a Model whose configuration is the input ``configuration`` (relative path)."""
        if not os.path.exists(self.path(configuration)):
            self.file(configuration, '# configuration of {}\nlr = 0.01\n'.format(model_id))
        self.producer_version_input = version
        return Model(producer, version_format, version, name, model_id, self.path(configuration), build_parameters)

    def ckpt(self, reference, rel, epoch, content=None):
        if content is None:
            content = 'weights {!r} epoch {}\n'.format(reference, epoch)
        if not os.path.exists(self.path(rel)):
            self.file(rel, content)
        return Checkpoint(reference, self.path(rel), epoch)

    def relpath(self, path):
        return os.path.relpath(str(path), self.root).replace(os.sep, '/')

    def recipe(self, model):
        """Derive the recipe from the built model object (exact training values included)."""
        t = model.training
        init = model.initialisation
        if init is None:
            init_recipe = None
        elif isinstance(init, Checkpoint):
            init_recipe = {'file': {'path': self.relpath(init.path), 'name': init.name}}
        else:
            init_recipe = {'pmf': {'path': self.relpath(init.path), 'checkpoint': tag(init.checkpoint)}}
        return {
            'producer': {'name': model.producer.name, 'version_format': model.producer.version.format,
                         'version': self.producer_version_input},
            'name': model.name,
            'id': model.id,
            'configuration': self.relpath(model.producer.configuration),
            'build_parameters': tag(model.build_parameters),
            'training': {
                'status': t.status,
                'start_epoch': t.start_epoch, 'start_time': t.start_timestamp,
                'latest_epoch': t.latest_epoch, 'latest_time': t.latest_timestamp,
                'end_epoch': t.end_epoch, 'end_time': t.end_timestamp,
            },
            'checkpoints': [{'reference': tag(ref), 'epoch': c.epoch, 'file': self.relpath(c.path)}
                            for ref, c in model.checkpoint_collection.items()],
            'initialisation': init_recipe,
        }


def tick():
    """Make successive ``time.time()`` values distinct (and increasing)."""
    time.sleep(0.001)


def case_basic_pending(c):
    m = c.model('faster_rcnn', '0.4.0', 'model_name', '3d6acb1f9e0c4bb0a1f6a2c1b1d2e3f4', 'inputs/config.py', {})
    return m


def case_running_int_times(c):
    m = c.model('faster_rcnn', '1.0.0rc1', 'rcnn running', 'run-0001', 'inputs/my conf.yaml',
                {'backbone': 'resnet50', 'num_classes': 3})
    m.training = Training(start_time=1552464823, start_epoch=0, latest_time=1552481973, latest_epoch=12,
                          status='running')
    m.add_checkpoint(c.ckpt(1, 'inputs/ckpt/1.h5', 1), c.ckpt(5, 'inputs/ckpt/5.h5', 5),
                     c.ckpt(12, 'inputs/ckpt/12.h5', 12))
    return m


def case_running_float_times(c):
    m = c.model('yolo_v3', '2!1.0.post1.dev2', 'yolo', 'yolo-float', 'inputs/settings.json',
                {'anchors': [[10, 13], [16, 30]], 'score': 0.5})
    m.register_training_start(0)
    tick()
    m.register_epoch()
    m.add_checkpoint(c.ckpt('first', 'inputs/first.ckpt', 1))
    tick()
    m.register_epoch(4)
    m.add_checkpoint(c.ckpt('fourth', 'inputs/fourth.ckpt', 4))
    tick()
    m.register_epoch(2)  # latest stays 4 (max)
    return m


def case_finished_api(c):
    m = c.model('ResNet', '0.4.0', 'finished model', 'fin-1', 'inputs/config.py', {'depth': 50})
    m.register_training_start(3)
    for _ in range(3):
        tick()
        m.register_epoch()
        m.add_checkpoint(c.ckpt('epoch_{}'.format(m.training.latest_epoch),
                                'inputs/w{}.pt'.format(m.training.latest_epoch), m.training.latest_epoch))
    tick()
    m.register_training_end(True)
    return m


def case_failed_explicit(c):
    m = c.model('seg_net2', '1.0.0', 'failed', 'failed-explicit', 'inputs/config.py', {'x': 1.0})
    m.training = Training(start_time=10.0, start_epoch=0, latest_time=20.5, latest_epoch=4, end_time=20.5,
                          end_epoch=4, status='failed')
    m.add_checkpoint(c.ckpt(2, 'inputs/2.bin', 2), c.ckpt(4, 'inputs/4.bin', 4))
    return m


def case_failed_int_times(c):
    m = c.model('seg_net2', '1.0.0', 'failed ints', 'failed-int', 'inputs/config.py', {'retry': False})
    m.training = Training(start_time=1552464823, start_epoch=2, latest_time=1552464900, latest_epoch=3,
                          status='running')
    m.add_checkpoint(c.ckpt(3, 'inputs/3.bin', 3))
    m.register_training_end(False)  # running -> failed, end = latest
    return m


def case_failed_interrupt(c):
    m = c.model('seg_net2', '1.0.0', 'interrupted', 'failed-interrupt', 'inputs/config.py', {})
    m.register_training_start(7)
    tick()
    m.register_epoch()
    m.add_checkpoint(c.ckpt('8', 'inputs/8.bin', 8))
    tick()
    m.register_training_end(False)
    return m


def case_failed_never_started(c):
    m = c.model('ab', '0.0.1', None, 'never-started', 'inputs/config.py', {'note': 'failed before start'})
    m.register_training_end(False)  # pending -> failed, all times/epochs stay None
    return m


def case_mixed_refs(c):
    # 1 and '1' are different references; the file names differ.
    m = c.model('faster_rcnn', '0.4.0', None, 'None', 'inputs/config.py', {'refs': 'mixed'})
    m.training = Training(start_time=100, start_epoch=0, latest_time=200.25, latest_epoch=10, status='running')
    m.add_checkpoint(c.ckpt(1, 'inputs/int_one.h5', 1), c.ckpt('1', 'inputs/str_one.h5', 2),
                     c.ckpt('best', 'inputs/best.h5', 9), c.ckpt(10, 'inputs/ten.h5', 10),
                     c.ckpt(0, 'inputs/zero.h5', 0), c.ckpt('one', 'inputs/one.h5', 1))
    return m


def case_many_checkpoints(c):
    m = c.model('many_ckpt', '3.2.1', 'thirty', 'many-30', 'inputs/config.py', {'epochs': 30})
    m.training = Training(start_time=1600000000, start_epoch=1, latest_time=1600003000.5, latest_epoch=30,
                          end_time=1600003000.5, end_epoch=30, status='finished')
    for epoch in range(1, 31):
        m.add_checkpoint(c.ckpt(epoch, 'inputs/ckpt/epoch_{:02d}.h5'.format(epoch), epoch))
    return m


def case_many_str_refs(c):
    # '1'..'12' inserted numerically; the reference writes them sorted as strings.
    m = c.model('many_ckpt', '3.2.1', 'null', '1:20', 'inputs/config.py', {})
    m.training = Training(start_time=5, start_epoch=1, latest_time=6, latest_epoch=12, status='running')
    for epoch in range(1, 13):
        m.add_checkpoint(c.ckpt(str(epoch), 'inputs/s{}.h5'.format(epoch), epoch))
    return m


def case_sorted_refs_order(c):
    m = c.model('order_test', '0.4.0', '=', '1e10', 'inputs/config.py', {'z': 1, 'a': 2, 'm': 3})
    m.training = Training(start_time=1, start_epoch=0, latest_time=2, latest_epoch=3, status='running')
    m.add_checkpoint(c.ckpt('zeta', 'inputs/zeta.h5', 3), c.ckpt('alpha', 'inputs/alpha.h5', 1),
                     c.ckpt('mid', 'inputs/mid.h5', 2))
    return m


def case_yaml_tricky_strings(c):
    m = c.model('tricky', '0.4.0', 'yes', 'on', 'inputs/config.py',
                {'yes': 'No', 'on': '1e10', 'null': '~', '1:20': '=', '0x1F': '2020-01-01'})
    m.training = Training(start_time=1, start_epoch=0, latest_time=2, latest_epoch=40, status='running')
    refs = ['yes', 'on', 'No', 'OFF', '1e10', '0x1F', '~', 'null', 'Null', '2020-01-01', '1:20', '=', '<<',
            '012', '1_000', '.inf', '.NaN', 'True', 'y', 'n', '', ' lead space', 'trail space ', 'a: b',
            '#hash', '- dash', 'None', 'with space', '3.14', '-1', 'tab\there', 'multi\nline', "quote's \"both\"",
            '@at', '`tick', '!bang', '%pct', '&amp', '*star', '{brace}']
    for i, ref in enumerate(refs):
        m.add_checkpoint(c.ckpt(ref, 'inputs/t{:02d}.h5'.format(i), i))
    return m


def case_unicode(c):
    m = c.model('A1', '0.4.0', 'modèle', '日本', 'inputs/réglages du modèle.cfg',
                {'modèle': '日本', '日本': ['é', 'ß', '🙂']})
    m.training = Training(start_time=1.5, start_epoch=0, latest_time=2.5, latest_epoch=2, status='running')
    m.add_checkpoint(c.ckpt('modèle', 'inputs/époque 1.h5', 1), c.ckpt('日本', 'inputs/日本.h5', 2))
    return m


def case_file_init(c):
    c.file('inputs/resnet50 weights.h5', b'imagenet pretrained weights\n')
    m = c.model('faster_rcnn', '0.4.0', 'from imagenet', 'file-init-1', 'inputs/config.py',
                {'backbone': 'resnet50'})
    m.register_initialisation(c.path('inputs/resnet50 weights.h5'), name='yes')
    m.register_training_start(0)
    tick()
    m.register_epoch()
    m.add_checkpoint(c.ckpt(1, 'inputs/1.h5', 1))
    return m


def _saved_init_model(c, folder, model_id, refs, init_file=None, init_pmf=None, name=None):
    """Build an initialisation model with the reference and save it under ``inputs/<folder>``."""
    m = c.model('init_producer', '1.2.3', name, model_id, 'inputs/{}_src/init config.py'.format(folder),
                {'role': 'initialisation', 'id': model_id})
    m.training = Training(start_time=1000, start_epoch=0, latest_time=2000.5, latest_epoch=len(refs),
                          end_time=2000.5, end_epoch=len(refs), status='finished')
    for epoch, ref in enumerate(refs, 1):
        m.add_checkpoint(c.ckpt(ref, 'inputs/{}_src/ckpt_{}.h5'.format(folder, epoch), epoch))
    if init_file is not None:
        c.file('inputs/{}_src/{}'.format(folder, init_file[0]), init_file[1])
        m.register_initialisation(c.path('inputs/{}_src/{}'.format(folder, init_file[0])), name=init_file[2])
    if init_pmf is not None:
        m.register_initialisation(c.path(init_pmf[0]), checkpoint_reference=init_pmf[1])
    m.save(c.path('inputs/' + folder))
    return 'inputs/' + folder


def case_pmf_init(c):
    init = _saved_init_model(c, 'init_model', 'init-0001', [1, '1', 'best'],
                             init_file=('base.h5', b'base weights', 'imagenet'), name='the init')
    m = c.model('faster_rcnn', '0.4.0', 'fine tuned', 'pmf-init-1', 'inputs/config.py', {'finetune': True})
    m.register_initialisation(c.path(init), checkpoint_reference='1')
    m.training = Training(start_time=3000, start_epoch=0, latest_time=3001, latest_epoch=1, status='running')
    m.add_checkpoint(c.ckpt(1, 'inputs/1.h5', 1))
    return m


def case_pmf_init_chain(c):
    base = _saved_init_model(c, 'base_model', 'base-0001', [1, 2],
                             init_file=('imagenet.npz', MD5_DIGITS_AND_E, 'imagenet'))
    mid = _saved_init_model(c, 'mid_model', 'mid-0001', ['best', 7], init_pmf=(base, 2))
    m = c.model('chain_top', '0.4.0', 'top of chain', 'chain-top', 'inputs/config.py', {'level': 3})
    m.register_initialisation(c.path(mid), checkpoint_reference=7)
    return m


def case_nested_build_params(c):
    bp = {
        'str_keys': {'b': 1, 'a': 2, 'yes': '1e10', 'No': 'on'},
        'int_keys': {10: 'ten', 2: 'two', -1: 'minus one', 0: 'zero'},
        'mixed_keys': {3: 'three', 'three': 3, 1.5: 'float key', None: 'null key', True: 'bool key'},
        'list': [1, 'two', 3.0, None, True, False, [], {}, [1, [2, [3]]], {'k': 'v'}],
        'floats': [1.5, -0.0, 0.1, 3.0, 1e-300, 1e20, 123456789.125, float('inf'), float('-inf'), float('nan')],
        'strings': ['yes', 'No', 'on', 'OFF', '1e10', '0x1F', '~', 'null', '2020-01-01', '1:20', '=', '<<',
                    '', ' ', 'multi\nline', 'tab\there', '#hash', 'a: b', '- dash', '012', '1_000', '.inf',
                    'None', 'modèle', '日本'],
        'date': datetime.date(2020, 1, 1),
        'empty_map': {},
        'empty_list': [],
        'ints': [0, -7, 9007199254740993, 9223372036854775807, -9223372036854775808],
        'bool_true': True,
        'bool_false': False,
        'none': None,
        'deep': {'a': {'b': {'c': {'d': [{'e': None}]}}}},
        1: 'top-level int key',
    }
    m = c.model('params', '0.4.0', 'params', 'params-1', 'inputs/config.py', bp)
    return m


def case_md5_digits(c):
    # A checkpoint and an initialisation file whose MD5 is digits and one 'e'; a configuration
    # whose MD5 is made of digits only.
    c.file('inputs/digits.cfg', MD5_DIGITS_ONLY)
    c.file('inputs/init/e_weights.bin', MD5_DIGITS_AND_E)
    m = c.model('md5_case', '0.4.0', 'md5', 'md5-1', 'inputs/digits.cfg', {'md5': '9149513e859509143579615244484974'})
    m.register_initialisation(c.path('inputs/init/e_weights.bin'), name='9149513e859509143579615244484974')
    m.training = Training(start_time=1, start_epoch=1, latest_time=1, latest_epoch=1, end_time=1, end_epoch=1,
                          status='finished')
    m.add_checkpoint(c.ckpt('e', 'inputs/e.bin', 1, content=MD5_DIGITS_AND_E),
                     c.ckpt('digits', 'inputs/d.bin', 1, content=MD5_DIGITS_ONLY))
    return m


def case_version_forms(c):
    m = c.model('x_', '1.0.0-RC1', '~', '2020-01-01', 'inputs/Makefile', {'v': '1.0.0-RC1'})
    return m


def case_version_epoch_post_dev(c):
    m = c.model('Producer_9', 'v2!1.0-post1.DEV2', 'Null', '~', 'inputs/config.py', {})
    m.training = Training(start_time=0, start_epoch=0, status='running')
    return m


def case_edge_times(c):
    # Negative epochs, equal times, a whole float, a huge float and a big int time.
    m = c.model('edges', '0.4.0', '', '', 'inputs/config.py', {'empty': ''})
    m.training = Training(start_time=0.0, start_epoch=-2, latest_time=1e20, latest_epoch=0, end_time=1e20,
                          end_epoch=0, status='finished')
    m.add_checkpoint(c.ckpt(-1, 'inputs/minus1.h5', -1), c.ckpt('0', 'inputs/zero.h5', 0))
    return m


def case_big_int_times(c):
    m = c.model('edges', '0.4.0', 'No', '0x1F', 'inputs/config.py', {})
    m.training = Training(start_time=1099511627776, start_epoch=0, latest_time=1099511627776,
                          latest_epoch=5, status='running')
    m.add_checkpoint(c.ckpt(5, 'inputs/ckpt', 5, content=b''))  # empty file, no extension
    return m


def case_shared_checkpoint_file(c):
    # Two references to the same input file (an alias): one file in data/checkpoints/.
    m = c.model('alias', '0.4.0', 'alias', 'alias-1', 'inputs/config.py', {})
    m.training = Training(start_time=1, start_epoch=0, latest_time=3, latest_epoch=12, status='running')
    m.add_checkpoint(c.ckpt(12, 'inputs/12.h5', 12), c.ckpt('best', 'inputs/12.h5', 12))
    return m


CORPUS = [
    ('basic_pending', case_basic_pending),
    ('running_int_times', case_running_int_times),
    ('running_float_times', case_running_float_times),
    ('finished_api', case_finished_api),
    ('failed_explicit', case_failed_explicit),
    ('failed_int_times', case_failed_int_times),
    ('failed_interrupt', case_failed_interrupt),
    ('failed_never_started', case_failed_never_started),
    ('mixed_refs', case_mixed_refs),
    ('many_checkpoints', case_many_checkpoints),
    ('many_str_refs', case_many_str_refs),
    ('sorted_refs_order', case_sorted_refs_order),
    ('yaml_tricky_strings', case_yaml_tricky_strings),
    ('unicode', case_unicode),
    ('file_init', case_file_init),
    ('pmf_init', case_pmf_init),
    ('pmf_init_chain', case_pmf_init_chain),
    ('nested_build_params', case_nested_build_params),
    ('md5_digits', case_md5_digits),
    ('version_forms', case_version_forms),
    ('version_epoch_post_dev', case_version_epoch_post_dev),
    ('edge_times', case_edge_times),
    ('big_int_times', case_big_int_times),
    ('shared_checkpoint_file', case_shared_checkpoint_file),
]


def fresh_dir(path):
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    os.makedirs(path)


def write_corpus(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    names = []
    for name, make in CORPUS:
        root = os.path.join(out_dir, name)
        fresh_dir(root)
        c = Case(root)
        model = make(c)
        model.save(os.path.join(root, 'model'))
        recipe = c.recipe(model)
        with open(os.path.join(root, 'recipe.json'), 'w') as f:
            json.dump(recipe, f, indent=1, ensure_ascii=True, allow_nan=False)
            f.write('\n')
        check = describe(os.path.join(root, 'model'))
        if not check['ok']:
            raise RuntimeError('corpus case {} is refused by the reference: {}'.format(name, check))
        names.append(name)
        log('corpus: wrote {}'.format(name))
    return names


# ------------------------------------------------------------------------------------------------
# invalid
# ------------------------------------------------------------------------------------------------
def spec_training_offences(t, checkpoints):
    """Offences of PMF-SPEC section 2, written from the spec (used to annotate the cases)."""
    out = []
    status = t.get('status')
    for kind in ('time', 'epoch'):
        other = 'epoch' if kind == 'time' else 'time'
        s, l, e = t.get('start_' + kind), t.get('latest_' + kind), t.get('end_' + kind)
        if s is None and e is not None:
            out.append('end_{} without start_{}'.format(kind, kind))
        if s is None and l is not None:
            out.append('latest_{} without start_{}'.format(kind, kind))
        if l is None and e is not None:
            out.append('end_{} without latest_{}'.format(kind, kind))
        if s is not None:
            if l is not None and s > l:
                out.append('start_{} > latest_{}'.format(kind, kind))
            if t.get('start_' + other) is None:
                out.append('start_{} without start_{}'.format(kind, other))
            if status == 'pending':
                out.append('start_{} with status pending'.format(kind))
        if l is not None:
            if e is not None and l > e:
                out.append('latest_{} > end_{}'.format(kind, kind))
            if t.get('latest_' + other) is None:
                out.append('latest_{} without latest_{}'.format(kind, other))
            if status == 'pending':
                out.append('latest_{} with status pending'.format(kind))
        if e is not None:
            if t.get('end_' + other) is None:
                out.append('end_{} without end_{}'.format(kind, other))
            if status in ('pending', 'running'):
                out.append('end_{} with status {}'.format(kind, status))
    latest = t.get('latest')
    if latest is not None and checkpoints and latest not in checkpoints:
        out.append('latest not among checkpoints')
    if t.get('latest_epoch') is not None and any(v['epoch'] > t['latest_epoch'] for v in checkpoints.values()):
        out.append('checkpoint epoch > latest_epoch')
    return out


def read_meta(root):
    with open(os.path.join(root, 'metadata.yaml')) as f:
        return yaml.safe_load(f)


def write_meta(root, meta):
    with open(os.path.join(root, 'metadata.yaml'), 'w') as f:
        yaml.safe_dump(meta, f)


def edit_meta(fn):
    def mutate(root):
        meta = read_meta(root)
        fn(meta)
        write_meta(root, meta)
    return mutate


def set_training(**values):
    keys = ('status', 'start_epoch', 'start_time', 'latest_epoch', 'latest_time', 'end_epoch', 'end_time')

    def fn(meta):
        training = meta['model']['training']
        for key in keys:
            training[key] = values.get(key)
        for key in ('latest', 'checkpoints'):
            if key in values:
                training[key] = values[key]
    return edit_meta(fn)


def remove(rel):
    def mutate(root):
        path = os.path.join(root, rel)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    return mutate


def append_bytes(rel, content=b'tampered\n'):
    def mutate(root):
        with open(os.path.join(root, rel), 'ab') as f:
            f.write(content)
    return mutate


def replace_text(old, new):
    def mutate(root):
        path = os.path.join(root, 'metadata.yaml')
        with open(path, encoding='utf-8') as f:
            text = f.read()
        if old not in text:
            raise RuntimeError('replace_text: {!r} not found in {}'.format(old, path))
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text.replace(old, new, 1))
    return mutate


def write_file(rel, content):
    def mutate(root):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(content if isinstance(content, bytes) else content.encode('utf-8'))
    return mutate


def chain(*mutations):
    def mutate(root):
        for mutation in mutations:
            mutation(root)
    return mutate


def make_invalid_bases(tmp):
    """Build the valid base models the invalid cases start from (with the reference)."""
    bases = {}
    c = Case(os.path.join(tmp, 'src'))

    # 'ckpt': file initialisation, three checkpoints (int and str refs), finished training.
    c.file('inputs/init.h5', b'init weights\n')
    m = c.model('faster_rcnn', '0.4.0', 'base', 'base-ckpt', 'inputs/config.py', {'a': 1})
    m.training = Training(start_time=10, start_epoch=0, latest_time=20, latest_epoch=5, end_time=20, end_epoch=5,
                          status='finished')
    m.add_checkpoint(c.ckpt(1, 'inputs/1.h5', 1), c.ckpt('2', 'inputs/2.h5', 2), c.ckpt('last', 'inputs/5.h5', 5))
    m.register_initialisation(c.path('inputs/init.h5'), name='imagenet')
    bases['ckpt'] = os.path.join(tmp, 'ckpt')
    m.save(bases['ckpt'])

    # 'plain': no initialisation, no checkpoint, pending.
    m = c.model('faster_rcnn', '0.4.0', 'plain', 'base-plain', 'inputs/config.py', {})
    bases['plain'] = os.path.join(tmp, 'plain')
    m.save(bases['plain'])

    # 'pmf': PMF initialisation from a model with checkpoints 1 and 'best'.
    init = _saved_init_model(c, 'init_model', 'init-base', [1, 'best'])
    m = c.model('faster_rcnn', '0.4.0', 'pmf', 'base-pmf', 'inputs/config.py', {})
    m.register_initialisation(c.path(init), checkpoint_reference='best')
    m.training = Training(start_time=1, start_epoch=0, latest_time=2, latest_epoch=1, status='running')
    m.add_checkpoint(c.ckpt(1, 'inputs/p1.h5', 1))
    bases['pmf'] = os.path.join(tmp, 'pmf')
    m.save(bases['pmf'])
    return bases


WRONGLY_ACCEPTS = 'reference wrongly accepts: '

# (case name, base, rule, mutation)
T = set_training
INVALID = [
    # --- training cross-checks: times ---------------------------------------------------------
    ('t_end_time_without_start_time', 'plain', 'E_t without S_t',
     T(status='failed', start_time=None, latest_time=None, end_time=5, start_epoch=None, latest_epoch=None,
       end_epoch=None)),
    ('t_latest_time_without_start_time', 'plain', 'L_t without S_t',
     T(status='running', start_time=None, latest_time=5, start_epoch=None, latest_epoch=None)),
    ('t_end_time_without_latest_time', 'plain', 'E_t without L_t',
     T(status='finished', start_time=1, latest_time=None, end_time=5, start_epoch=0, latest_epoch=None,
       end_epoch=None)),
    ('t_start_time_after_latest_time', 'plain', 'S_t > L_t',
     T(status='running', start_time=10, latest_time=5.5, start_epoch=0, latest_epoch=1)),
    ('t_start_time_without_start_epoch', 'plain', 'S_t without S_e',
     T(status='running', start_time=1, start_epoch=None)),
    ('t_start_time_pending', 'plain', 'S_t with status pending',
     T(status='pending', start_time=1, start_epoch=None)),
    ('t_latest_time_after_end_time', 'plain', 'L_t > E_t',
     T(status='finished', start_time=1, latest_time=10, end_time=5, start_epoch=0, latest_epoch=2, end_epoch=2)),
    ('t_latest_time_without_latest_epoch', 'plain', 'L_t without L_e',
     T(status='running', start_time=1, latest_time=2, start_epoch=0, latest_epoch=None)),
    ('t_latest_time_pending', 'plain', 'L_t with status pending',
     T(status='pending', start_time=1, latest_time=2, start_epoch=None, latest_epoch=None)),
    ('t_end_time_without_end_epoch', 'plain', 'E_t without E_e',
     T(status='finished', start_time=1, latest_time=2, end_time=3, start_epoch=0, latest_epoch=1, end_epoch=None)),
    ('t_end_time_running', 'plain', 'E_t with status running',
     T(status='running', start_time=1, latest_time=2, end_time=3, start_epoch=0, latest_epoch=1, end_epoch=None)),
    ('t_end_time_pending', 'plain', 'E_t with status pending',
     T(status='pending', start_time=None, latest_time=None, end_time=3)),
    # --- training cross-checks: epochs --------------------------------------------------------
    ('e_end_epoch_without_start_epoch', 'plain', 'E_e without S_e',
     T(status='failed', start_epoch=None, latest_epoch=None, end_epoch=5)),
    ('e_latest_epoch_without_start_epoch', 'plain', 'L_e without S_e',
     T(status='running', start_epoch=None, latest_epoch=5)),
    ('e_end_epoch_without_latest_epoch', 'plain', 'E_e without L_e',
     T(status='finished', start_time=1, latest_time=2, end_time=3, start_epoch=0, latest_epoch=None, end_epoch=3)),
    ('e_start_epoch_after_latest_epoch', 'plain', 'S_e > L_e',
     T(status='running', start_time=1, latest_time=2, start_epoch=5, latest_epoch=2)),
    ('e_start_epoch_without_start_time', 'plain', 'S_e without S_t',
     T(status='running', start_time=None, start_epoch=0)),
    ('e_start_epoch_pending', 'plain', 'S_e with status pending',
     T(status='pending', start_time=None, start_epoch=0)),
    ('e_latest_epoch_after_end_epoch', 'plain', 'L_e > E_e',
     T(status='finished', start_time=1, latest_time=2, end_time=3, start_epoch=0, latest_epoch=5, end_epoch=3)),
    ('e_latest_epoch_without_latest_time', 'plain', 'L_e without L_t',
     T(status='running', start_time=1, latest_time=None, start_epoch=0, latest_epoch=3)),
    ('e_latest_epoch_pending', 'plain', 'L_e with status pending',
     T(status='pending', start_epoch=None, latest_epoch=3)),
    ('e_end_epoch_without_end_time', 'plain', 'E_e without E_t',
     T(status='finished', start_time=1, latest_time=2, end_time=None, start_epoch=0, latest_epoch=3, end_epoch=3)),
    ('e_end_epoch_running', 'plain', 'E_e with status running',
     T(status='running', start_time=1, latest_time=2, end_time=None, start_epoch=0, latest_epoch=3, end_epoch=3)),
    ('e_end_epoch_pending', 'plain', 'E_e with status pending',
     T(status='pending', end_epoch=3)),
    # --- training cross-checks: checkpoints ---------------------------------------------------
    ('latest_not_among_checkpoints', 'ckpt', 'latest not among the checkpoints',
     edit_meta(lambda m: m['model']['training'].update(latest='missing'))),
    ('latest_int_vs_str', 'ckpt', "latest 2 (int) while the checkpoint is '2' (str)",
     edit_meta(lambda m: m['model']['training'].update(latest=2))),
    ('checkpoint_epoch_after_latest_epoch', 'ckpt', 'checkpoint epoch > latest_epoch',
     edit_meta(lambda m: m['model']['training']['checkpoints']['last'].update(epoch=6))),
    # --- tree ---------------------------------------------------------------------------------
    ('missing_metadata', 'ckpt', 'missing metadata.yaml', remove('metadata.yaml')),
    ('missing_data', 'ckpt', 'missing data/', remove('data')),
    ('missing_build_parameters', 'ckpt', 'missing data/build_parameters.yaml', remove('data/build_parameters.yaml')),
    ('missing_initialisation_dir', 'plain', 'missing data/initialisation/', remove('data/initialisation')),
    ('missing_checkpoints_dir', 'ckpt', 'missing data/checkpoints/ (checkpoints checked)',
     remove('data/checkpoints')),
    ('missing_checkpoints_dir_no_checkpoint', 'plain',
     'missing data/checkpoints/ with no registered checkpoint (checkpoints checked)', remove('data/checkpoints')),
    ('missing_configuration', 'ckpt', 'missing configuration file', remove('config.py')),
    ('missing_checkpoint_file', 'ckpt', 'missing checkpoint file (checkpoints checked)',
     remove('data/checkpoints/5.h5')),
    ('configuration_checksum_mismatch', 'ckpt', 'configuration checksum mismatch (strict only)',
     append_bytes('config.py')),
    ('checkpoint_checksum_mismatch', 'ckpt', 'checkpoint checksum mismatch (strict only, checkpoints checked)',
     append_bytes('data/checkpoints/2.h5')),
    ('initialisation_checksum_mismatch', 'ckpt', 'initialisation file checksum mismatch (strict only)',
     append_bytes('data/initialisation/init.h5')),
    ('pmf_init_missing_checkpoint', 'pmf', 'PMF initialisation checkpoint not among the init model checkpoints',
     edit_meta(lambda m: m['model']['initialisation']['pmf'].update(checkpoint='nope'))),
    ('pmf_init_checkpoint_int_vs_str', 'pmf', "PMF initialisation checkpoint '1' (str) while the init has 1 (int)",
     edit_meta(lambda m: m['model']['initialisation']['pmf'].update(checkpoint='1'))),
    ('pmf_init_without_metadata', 'pmf', 'PMF initialisation but no data/initialisation/metadata.yaml',
     remove('data/initialisation/metadata.yaml')),
    ('pmf_init_invalid_init_metadata', 'pmf', 'PMF initialisation whose own metadata is invalid',
     lambda root: edit_meta(lambda m: m['model'].update(id=5))(os.path.join(root, 'data', 'initialisation'))),
    ('file_init_missing_file', 'ckpt', 'file initialisation whose file is missing, data/initialisation/ empty '
     '(the reference crashes with a TypeError)',
     remove('data/initialisation/init.h5')),
    ('file_init_other_file', 'ckpt', 'file initialisation whose file is missing, another file is there',
     chain(remove('data/initialisation/init.h5'), write_file('data/initialisation/other.h5', b'other'))),
    ('pmf_init_empty_initialisation_dir', 'pmf', 'PMF initialisation with an empty data/initialisation/ '
     '(the reference crashes with a TypeError)',
     chain(remove('data/initialisation'), lambda root: os.makedirs(os.path.join(root, 'data', 'initialisation')))),
    ('file_init_with_metadata', 'pmf', 'file initialisation with a metadata.yaml in data/initialisation/',
     edit_meta(lambda m: m['model'].update(initialisation={'file': {
         'name': 'x', 'path': 'data/initialisation/metadata.yaml', 'hash': '0' * 32}}))),
    ('init_both_forms', 'ckpt', 'initialisation with both pmf and file',
     edit_meta(lambda m: m['model']['initialisation'].update(
         pmf={'name': None, 'id': 'x', 'checkpoint': 1, 'path': 'data/initialisation'}))),
    ('fifo_in_tree', 'ckpt', 'a FIFO (special file) in the tree',
     lambda root: os.mkfifo(os.path.join(root, 'data', 'a_fifo'))),
    # --- metadata syntax / schema -------------------------------------------------------------
    ('invalid_yaml_syntax', 'ckpt', 'metadata.yaml is not valid YAML',
     write_file('metadata.yaml', 'format: {version: 1.0.0\nmodel: [\n')),
    ('metadata_not_a_mapping', 'ckpt', 'metadata.yaml is a list', write_file('metadata.yaml', '- 1\n- 2\n')),
    ('metadata_empty', 'ckpt', 'metadata.yaml is empty (null)', write_file('metadata.yaml', '')),
    ('md5_uppercase', 'ckpt', 'configuration hash in uppercase',
     edit_meta(lambda m: m['model']['configuration'].update(hash=m['model']['configuration']['hash'].upper()))),
    ('md5_31_chars', 'ckpt', 'checkpoint hash of 31 characters',
     edit_meta(lambda m: m['model']['training']['checkpoints'][1].update(
         hash=m['model']['training']['checkpoints'][1]['hash'][:31]))),
    ('md5_init_not_hex', 'ckpt', 'initialisation file hash not hexadecimal',
     edit_meta(lambda m: m['model']['initialisation']['file'].update(hash='g' * 32))),
    ('unknown_key_root', 'ckpt', 'unknown key at the root', edit_meta(lambda m: m.update(extra=1))),
    ('unknown_key_format', 'ckpt', 'unknown key in format', edit_meta(lambda m: m['format'].update(extra=1))),
    ('unknown_key_producer_version', 'ckpt', 'unknown key in format.producer.version',
     edit_meta(lambda m: m['format']['producer']['version'].update(extra=1))),
    ('unknown_key_model', 'ckpt', 'unknown key in model', edit_meta(lambda m: m['model'].update(extra=1))),
    ('unknown_key_training', 'ckpt', 'unknown key in model.training',
     edit_meta(lambda m: m['model']['training'].update(extra=1))),
    ('unknown_key_checkpoint_entry', 'ckpt', 'unknown key in a checkpoint entry',
     edit_meta(lambda m: m['model']['training']['checkpoints'][1].update(extra=1))),
    ('unknown_key_init_file', 'ckpt', 'unknown key in initialisation.file',
     edit_meta(lambda m: m['model']['initialisation']['file'].update(extra=1))),
    ('unknown_key_init_pmf', 'pmf', 'unknown key in initialisation.pmf',
     edit_meta(lambda m: m['model']['initialisation']['pmf'].update(extra=1))),
    ('missing_key_latest', 'ckpt', 'missing key model.training.latest',
     edit_meta(lambda m: m['model']['training'].pop('latest'))),
    ('missing_key_model_name', 'ckpt', 'missing key model.name', edit_meta(lambda m: m['model'].pop('name'))),
    ('wrong_type_checkpoint_epoch_str', 'ckpt', "checkpoint epoch is a string ('1')",
     edit_meta(lambda m: m['model']['training']['checkpoints'][1].update(epoch='1'))),
    ('wrong_type_start_epoch_str', 'ckpt', "start_epoch is a string ('0')",
     edit_meta(lambda m: m['model']['training'].update(start_epoch='0'))),
    ('wrong_type_epoch_float', 'ckpt', 'checkpoint epoch is a float (1.5)',
     edit_meta(lambda m: m['model']['training']['checkpoints'][1].update(epoch=1.5))),
    ('wrong_type_time_str', 'ckpt', "start_time is a string ('10')",
     edit_meta(lambda m: m['model']['training'].update(start_time='10'))),
    ('wrong_type_id_int', 'ckpt', 'model id is an int', edit_meta(lambda m: m['model'].update(id=5))),
    ('wrong_type_name_int', 'ckpt', 'model name is an int', edit_meta(lambda m: m['model'].update(name=5))),
    ('wrong_type_checkpoint_ref_float', 'ckpt', 'checkpoint reference is a float (1.5)',
     edit_meta(lambda m: m['model']['training']['checkpoints'].update(
         {1.5: m['model']['training']['checkpoints'].pop(1)}))),
    ('wrong_type_version_value_float', 'ckpt', 'producer version value is a YAML float (1.0), not a string',
     replace_text('value: 0.4.0', 'value: 1.0')),
    ('empty_checkpoint_path', 'ckpt', 'checkpoint path is an empty string',
     edit_meta(lambda m: m['model']['training']['checkpoints'][1].update(path=''))),
    ('status_done', 'ckpt', 'training status done', edit_meta(lambda m: m['model']['training'].update(status='done'))),
    ('format_version_1_0_1', 'ckpt', 'format version 1.0.1',
     edit_meta(lambda m: m['format'].update(version='1.0.1'))),
    ('producer_name_a', 'ckpt', 'producer name a (one character)',
     edit_meta(lambda m: m['format']['producer'].update(name='a'))),
    ('producer_name_1abc', 'ckpt', 'producer name 1abc (starts with a digit)',
     edit_meta(lambda m: m['format']['producer'].update(name='1abc'))),
    ('producer_name_dash', 'ckpt', 'producer name with a dash (faster-rcnn)',
     edit_meta(lambda m: m['format']['producer'].update(name='faster-rcnn'))),
    # --- cases the reference wrongly accepts --------------------------------------------------
    ('bool_epoch', 'ckpt', 'a boolean checkpoint epoch (true)',
     edit_meta(lambda m: m['model']['training']['checkpoints'][1].update(epoch=True))),
    ('unknown_version_format', 'ckpt', WRONGLY_ACCEPTS + 'unknown producer version format semver '
     '(validate passes, Model.load raises ValueError)',
     edit_meta(lambda m: m['format']['producer']['version'].update(format='semver'))),
    ('build_parameters_invalid_yaml', 'ckpt', WRONGLY_ACCEPTS + 'data/build_parameters.yaml is not valid YAML '
     '(validate passes, Model.load raises a yaml error)',
     write_file('data/build_parameters.yaml', 'a: [1, 2\n')),
    ('checkpoint_path_absolute', 'ckpt', WRONGLY_ACCEPTS + 'absolute checkpoint path (only the file name is '
     'looked up in data/checkpoints/)',
     edit_meta(lambda m: m['model']['training']['checkpoints'][1].update(path='/nonexistent/dir/1.h5'))),
    ('checkpoint_path_escapes_root', 'ckpt', WRONGLY_ACCEPTS + 'checkpoint path escaping the root (..)',
     edit_meta(lambda m: m['model']['training']['checkpoints'][1].update(path='../../outside/1.h5'))),
    ('checkpoint_path_outside_checkpoints_dir', 'ckpt', WRONGLY_ACCEPTS + 'checkpoint path outside '
     'data/checkpoints/ (data/other/1.h5)',
     edit_meta(lambda m: m['model']['training']['checkpoints'][1].update(path='data/other/1.h5'))),
    ('configuration_path_escapes_root', 'ckpt', 'configuration path escaping the root (../config.py)',
     edit_meta(lambda m: m['model']['configuration'].update(path='../config.py'))),
    ('symlink_outside_root', 'ckpt', WRONGLY_ACCEPTS + 'a checkpoint file that is a symbolic link to a file '
     'outside the model root (same content, so strict checksums pass)', None),  # built in write_invalid
]


def write_invalid(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='pmf-invalid-bases-')
    results = []
    try:
        bases = make_invalid_bases(tmp)
        for name, base, rule, mutation in INVALID:
            root = os.path.join(out_dir, name)
            if os.path.lexists(root):
                shutil.rmtree(root)
            shutil.copytree(bases[base], root, symlinks=True)
            if name == 'symlink_outside_root':
                outside = os.path.join(out_dir, '_outside')
                os.makedirs(outside, exist_ok=True)
                target = os.path.join(outside, '5.h5')
                shutil.copyfile(os.path.join(root, 'data', 'checkpoints', '5.h5'), target)
                link = os.path.join(root, 'data', 'checkpoints', '5.h5')
                os.remove(link)
                os.symlink(os.path.relpath(target, os.path.dirname(link)), link)
            else:
                mutation(root)
            entry = {
                'case': name,
                'path': name,
                'rule': rule,
                'base': base,
                'strict': verdict(root, strict=True),
                'non_strict': verdict(root, strict=False),
                'strict_no_checkpoints': verdict(root, strict=True, checkpoints=False),
            }
            if name.startswith(('t_', 'e_', 'latest_', 'checkpoint_epoch')):
                training = read_meta(root)['model']['training']
                entry['spec_offences'] = spec_training_offences(training, training.get('checkpoints') or {})
            if not entry['strict']['valid'] == rule.startswith(WRONGLY_ACCEPTS):
                log('WARNING: case {}: strict verdict {} does not match the rule {!r}'.format(
                    name, entry['strict']['valid'], rule))
            results.append(entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


# ------------------------------------------------------------------------------------------------
# selfcheck
# ------------------------------------------------------------------------------------------------
def diff(a, b, where='$'):
    """A short list of differences between two JSON-like values."""
    if type(a) is not type(b):
        return ['{}: {!r} != {!r}'.format(where, a, b)]
    if isinstance(a, dict):
        out = []
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                out.append('{}.{}: only in one side'.format(where, key))
            else:
                out.extend(diff(a[key], b[key], '{}.{}'.format(where, key)))
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return ['{}: length {} != {}'.format(where, len(a), len(b))]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out.extend(diff(x, y, '{}[{}]'.format(where, i)))
        return out
    return [] if a == b else ['{}: {!r} != {!r}'.format(where, a, b)]


def selfcheck(tmp_dir):
    corpus_dir = os.path.join(tmp_dir, 'corpus')
    rebuild_dir = os.path.join(tmp_dir, 'rebuild')
    fresh_dir(corpus_dir)
    fresh_dir(rebuild_dir)
    started = time.time()
    names = write_corpus(corpus_dir)
    mismatches = []
    for name in names:
        case_dir = os.path.join(corpus_dir, name)
        with open(os.path.join(case_dir, 'recipe.json')) as f:
            recipe = json.load(f)
        rebuilt = os.path.join(rebuild_dir, name)
        build(recipe, case_dir, rebuilt)
        for options in ({}, {'strict': False}, {'checkpoints': False}):
            original = describe(os.path.join(case_dir, 'model'), **options)
            again = describe(rebuilt, **options)
            differences = diff(original, again)
            if differences:
                mismatches.append({'case': name, 'options': options, 'differences': differences[:20]})
    invalid_dir = os.path.join(tmp_dir, 'invalid')
    fresh_dir(invalid_dir)
    invalid = write_invalid(invalid_dir)
    unexpected = [entry['case'] for entry in invalid
                  if entry['strict']['valid'] != entry['rule'].startswith(WRONGLY_ACCEPTS)]
    return {
        'ok': not mismatches and not unexpected,
        'cases': names,
        'mismatches': mismatches,
        'invalid_cases': len(invalid),
        'invalid_unexpected_verdicts': unexpected,
        'seconds': round(time.time() - started, 3),
    }


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('corpus', help='write valid models saved by the reference, with recipes')
    p.add_argument('out_dir')
    p = sub.add_parser('invalid', help='write invalid models and record the reference verdicts')
    p.add_argument('out_dir')
    for command in ('describe', 'validate'):
        p = sub.add_parser(command)
        p.add_argument('model_dir')
        p.add_argument('--no-strict', dest='strict', action='store_false')
        p.add_argument('--no-checkpoints', dest='checkpoints', action='store_false')
    p = sub.add_parser('build', help='rebuild a recipe with the reference API')
    p.add_argument('recipe')
    p.add_argument('out_dir')
    p = sub.add_parser('selfcheck', help='corpus -> build -> describe both -> compare')
    p.add_argument('tmp_dir')
    args = parser.parse_args(argv)

    if args.command == 'corpus':
        emit({'cases': write_corpus(args.out_dir)})
    elif args.command == 'invalid':
        results = write_invalid(args.out_dir)
        for entry in results:
            log('{:45s} strict={:5s} non_strict={:5s}  {}'.format(
                entry['case'], str(entry['strict']['valid']), str(entry['non_strict']['valid']), entry['rule']))
        emit({'cases': results})
    elif args.command == 'describe':
        emit(describe(args.model_dir, strict=args.strict, checkpoints=args.checkpoints))
    elif args.command == 'validate':
        emit(verdict(args.model_dir, strict=args.strict, checkpoints=args.checkpoints))
    elif args.command == 'build':
        with open(args.recipe) as f:
            recipe = json.load(f)
        build(recipe, os.path.dirname(os.path.abspath(args.recipe)), args.out_dir)
        emit({'ok': True, 'path': args.out_dir})
    elif args.command == 'selfcheck':
        report = selfcheck(args.tmp_dir)
        emit(report)
        return 0 if report['ok'] else 1
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except BaseException:  # noqa: B902
        traceback.print_exc()
        sys.exit(2)
