/* Placeholder: filled in by the issue 3 work on this family. */
typedef int lk_placeholder_rope_cache;
