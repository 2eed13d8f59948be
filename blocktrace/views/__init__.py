"""Views from the seed tools as tracers on the engine: tracefunc's line view,
the type tracer, the annotated source view."""
