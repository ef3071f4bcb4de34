"""The notifications service: mails to customers, each sent once."""
