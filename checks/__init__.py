"""ae-lab's verification lab: every derivative of the engine checked independent ways."""
