"""Side effects: guards and effects inside a transition, jobs run by workers after it."""
