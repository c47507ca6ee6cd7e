"""One module per op: Triton kernels, the autograd Function and the plain-torch reference side by side."""
