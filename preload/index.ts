// Placeholder until the console API contract lands: exposes nothing.
export {}
