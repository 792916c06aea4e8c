"""The government cloud as code: Pulumi components (OpenStack + Kubernetes), the program built from specs, plan mode
under mocks and the Automation API runner where the ``pulumi`` CLI exists."""
