# The programs of `webrepl-mount share` (src/share.rs, `share_program`):
# each after its `# == name` line, up to the next, is sent as one program
# with its comment lines left out and its WRFS_ names filled in: the
# class's version (WRFS_VERSION), its copy on flash (WRFS_FILE), the line
# between two of its pieces there (WRFS_MARK), its pieces as str literals
# (WRFS_PIECES), whether the share is read-only (WRFS_RO). Each runs
# inside a function of ours: a person's `os` or `f` in the REPL stays
# theirs.

# == probe
# Prints whether WRFS_FILE holds this version of the class: `F True`.
def _wrfs_p():
    try:
        with open('WRFS_FILE') as f:
            print('F', f.readline().strip() == '#WRFS_VERSION')
    except Exception:
        print('F', False)
_wrfs_p()
del _wrfs_p

# == from_flash
# Defines the class where this boot lacks it (or has another version's),
# from WRFS_FILE: each piece compiled alone, as it was pasted.
def _wrfs_load():
    import gc
    g = globals()
    try:
        _WRFS.V == 'WRFS_VERSION' or _WRFS.x
        return
    except Exception:
        pass
    gc.collect()
    with open('WRFS_FILE') as f:
        f.readline()
        b = []
        for l in f:
            if l == 'WRFS_MARK':
                exec(''.join(b), g)
                b = []
                gc.collect()
            else:
                b.append(l)
        exec(''.join(b), g)
    gc.collect()
_wrfs_load()
del _wrfs_load

# == pasted
# The class defined from its pieces sent in the program (where its copy
# on flash could not be written): each compiled alone, as from flash.
def _wrfs_load():
    import gc
    g = globals()
    for p in (WRFS_PIECES,):
        exec(p, g)
        gc.collect()
_wrfs_load()
del _wrfs_load

# == mount
# `/remote` mounted (again) and made the current directory.
def _wrfs_m():
    import os
    try:
        os.umount('/remote')
    except OSError:
        pass
    os.mount(_WRFS(WRFS_RO), '/remote')
    os.chdir('/remote')
_wrfs_m()
del _wrfs_m

# == unmount
# Takes `/remote` away again (the board's current directory back to `/`)
# and the class with it.
def _wrfs_u():
    import os
    try:
        if os.getcwd().startswith('/remote'):
            os.chdir('/')
        os.umount('/remote')
    except OSError:
        pass
_wrfs_u()
del _wrfs_u
try:
    del _WRFS
except NameError:
    pass
__import__('gc').collect()
