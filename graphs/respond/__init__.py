"""The respond graph: plan, retrieve, generate, record, hand to reflection."""
