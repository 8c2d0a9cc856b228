"""Who may sign in to an instance, and how: single sign-on through an OpenID Connect provider."""
