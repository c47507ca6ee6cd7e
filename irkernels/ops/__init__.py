"""One module per op: its Triton kernels, the plain-torch path, the ``torch.library`` custom op
with its fake (``_<op>_fake``) and autograd registration, the public function, and the float64
reference (docs/ops.md, "One pattern per op"); ``_backend`` picks the implementation."""
