/* fs/generate.c - to be written */
