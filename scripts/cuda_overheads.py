#!/usr/bin/env python3
"""Measures on this machine's GPU what a GPU profile's "overheads" hold (profiles/gpus/*.json):
the cuBLAS workspace that PyTorch takes from the caching allocator, per thread, and the memory the
CUDA context holds outside it. Needs a CUDA PyTorch; prints one line per fact and a JSON summary.

  python3 scripts/cuda_overheads.py

What it does: a first matrix product on the main thread (the forward), then a backward through a
product (the autograd engine runs it on its own device thread), then a product on a second plain
thread; after each, the caching allocator's allocated bytes beyond the tensors alive. The context
is the device's used memory (cudaMemGetInfo) minus the allocator's reserved bytes, after the
products, so it includes cuBLAS's own handles and kernels.
"""
import json
import threading

import torch


def main():
    dev = torch.device("cuda", 0)
    torch.cuda.init()
    props = torch.cuda.get_device_properties(dev)
    print(f"GPU: {props.name}, compute capability {props.major}.{props.minor}, torch {torch.__version__}")

    def allocated():
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated(dev)

    n = 512
    a = torch.randn(n, n, device=dev)
    b = torch.randn(n, n, device=dev)
    tensors = allocated()
    c = a @ b
    forward = allocated() - tensors - c.numel() * 4
    print(f"first product on the main thread: workspace {forward:,} B")

    w = torch.randn(n, n, device=dev, requires_grad=True)
    before = allocated()
    (a @ w).sum().backward()
    grad = w.grad.numel() * 4
    backward = allocated() - before - grad
    print(f"first backward (autograd's device thread): workspace {backward:,} B more")

    def product():
        torch.cuda.set_device(dev)
        (a @ b).sum().item()

    before = allocated()
    t = threading.Thread(target=product)
    t.start()
    t.join()
    thread = allocated() - before
    print(f"first product on another thread: workspace {thread:,} B more")

    bf = a.bfloat16()
    before = allocated()
    y = torch.nn.functional.linear(bf, bf, torch.zeros(n, device=dev, dtype=torch.bfloat16))
    lt = allocated() - before - y.numel() * 2
    print(f"bf16 linear with bias (cuBLASLt) after that: {lt:,} B more")

    free, total = torch.cuda.mem_get_info(dev)
    reserved = torch.cuda.memory_reserved(dev)
    context = total - free - reserved
    print(f"device memory used outside the caching allocator (context, cuBLAS handles): {context:,} B")
    print(json.dumps({"gpu": props.name, "torch": torch.__version__, "workspace_forward": forward,
                      "workspace_backward": backward, "workspace_other_thread": thread,
                      "cublaslt_extra": lt, "context_bytes": context, "total_bytes": total}))


if __name__ == "__main__":
    main()
