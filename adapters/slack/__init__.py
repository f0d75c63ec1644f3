"""The Slack desk: slack-bolt's AsyncApp in Socket Mode or HTTP mode, translating to and from the core."""
