/* fs/ref.c - to be written */
