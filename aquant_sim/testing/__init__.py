"""Public test helpers: hypothesis strategies for the rounding contract (``strategies``), the
conformance kit that checks any requantizer implementation against it (``conformance``), and
random programs whose multipliers are exactly dyadic (``dyadic``)."""
