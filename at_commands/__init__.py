"""at_commands"""
