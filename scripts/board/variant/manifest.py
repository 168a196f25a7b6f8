include("$(PORT_DIR)/variants/manifest.py")
