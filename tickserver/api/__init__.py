"""HTTP and GraphQL API."""
