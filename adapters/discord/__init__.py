"""The Discord desk: discord.py 2.x, translating gateway events and interactions to and from the core."""
