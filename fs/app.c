/* fs/app.c - to be written */
