#!/usr/bin/env python3
"""Python side of benches/compare: run one workload with the reference ``plums`` 0.5.2
(``--impl reference``, module ``plums.model``) or with our bindings (``--impl bindings``,
package ``plums_model``), in a fresh interpreter, and print one JSON object (seconds).

    workloads.py --impl reference training --dir DIR --epochs 100 --size-mib 4
    workloads.py --impl reference validate --dir DIR --strict --repeat 3
    workloads.py --impl reference load --dir DIR --repeat 1

Exit status 3 with {"error": "bindings not built"} when ``plums_model`` cannot be imported.
"""
import argparse
import json
import os
import sys
import time


def import_impl(name):
    """The (Model, Checkpoint, validate) triple of an implementation."""
    if name == 'reference':
        from plums.model import Model, Checkpoint
        from plums.model.validation import validate
        return Model, Checkpoint, validate
    try:
        import plums_model as pm
    except ImportError as e:
        print(json.dumps({'error': 'bindings not built', 'detail': str(e)}))
        sys.exit(3)
    mod = getattr(pm, 'model', pm)
    model = getattr(pm, 'Model', None) or getattr(mod, 'Model')
    checkpoint = getattr(pm, 'Checkpoint', None) or getattr(mod, 'Checkpoint')
    validate = getattr(pm, 'validate', None)
    if validate is None:
        validation = getattr(pm, 'validation', None) or getattr(mod, 'validation', None)
        validate = getattr(validation, 'validate', None)
    return model, checkpoint, validate


def training(impl, args):
    Model, Checkpoint, _ = impl
    work = os.path.join(args.dir, 'work')
    dest = os.path.join(args.dir, 'model')
    os.makedirs(work, exist_ok=True)
    cfg = os.path.join(work, 'config.py')
    with open(cfg, 'w') as f:
        f.write('# bench configuration\nlr = 0.1\nbatch_size = 32\n')
    model = Model('bench_trainer', 'py_pa', '1.0.0', 'bench', 'bench-training', cfg, {})
    model.register_training_start(0)
    size = args.size_mib << 20
    save_s, register_s, write_s = [], [], []
    loop_start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        path = os.path.join(work, 'epoch_{}.pt'.format(epoch))
        t = time.perf_counter()
        with open(path, 'wb') as f:
            f.write(os.urandom(size))
        write_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        ck = Checkpoint(epoch, path=path, epoch=epoch)
        model.register_epoch(epoch)
        model.add_checkpoint(ck)
        register_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        model.save(dest)
        save_s.append(time.perf_counter() - t)
    return {
        'workload': 'training', 'epochs': args.epochs, 'size_mib': args.size_mib,
        'loop_s': time.perf_counter() - loop_start, 'total_save_s': sum(save_s),
        'total_register_s': sum(register_s), 'total_write_s': sum(write_s), 'save_s': save_s,
    }


def validate_workload(impl, args):
    _, _, validate = impl
    if validate is None:
        raise SystemExit('this implementation has no validate function')
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        validate(args.dir, strict=args.strict)
        times.append(time.perf_counter() - t)
    return {'workload': 'validate', 'strict': args.strict, 'seconds': times}


def load(impl, args):
    Model, _, _ = impl
    times = []
    count = 0
    for _ in range(args.repeat):
        t = time.perf_counter()
        m = Model.load(args.dir, strict=args.strict)
        times.append(time.perf_counter() - t)
        count = len(m.checkpoint_collection)
    return {'workload': 'load', 'strict': args.strict, 'checkpoints': count, 'seconds': times}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--impl', choices=['reference', 'bindings'], required=True)
    p.add_argument('workload', choices=['training', 'validate', 'load'])
    p.add_argument('--dir', required=True)
    p.add_argument('--epochs', type=int, default=100)
    p.add_argument('--size-mib', type=int, default=4)
    p.add_argument('--strict', action='store_true')
    p.add_argument('--repeat', type=int, default=1)
    args = p.parse_args()
    impl = import_impl(args.impl)
    run = {'training': training, 'validate': validate_workload, 'load': load}[args.workload]
    out = run(impl, args)
    out['impl'] = args.impl
    print(json.dumps(out))


if __name__ == '__main__':
    main()
