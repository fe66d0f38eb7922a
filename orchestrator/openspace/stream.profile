{
  "version": {
    "major": 1,
    "minor": 5
  },
  "meta": {
    "name": "OpenSpace WebRTC stream check",
    "version": "1.0",
    "description": "A scene that needs no downloaded data (only example assets shipped with OpenSpace: a grid, a spherical grid and axes), for checking a streamed instance. P pauses the simulation time, so a viewer's key press can be read back with openspace.time.isPaused().",
    "author": "OpenSpace WebRTC",
    "license": "MIT License",
    "url": ""
  },
  "assets": [
    "examples/renderable/renderablegrid/grid",
    "examples/renderable/renderablesphericalgrid/sphericalgrid",
    "examples/renderable/renderablecartesianaxes/cartesianaxes"
  ],
  "actions": [
    {
      "identifier": "webrtc.pause_time",
      "name": "Pause time",
      "documentation": "Pauses the simulation time",
      "gui_path": "/WebRTC",
      "is_local": false,
      "script": "openspace.time.setPause(true)"
    }
  ],
  "keybindings": [
    {
      "action": "webrtc.pause_time",
      "key": "P"
    }
  ],
  "camera": {
    "type": "setNavigationState",
    "anchor": "Root",
    "aim": "",
    "frame": "",
    "position": {
      "x": 120.0,
      "y": 90.0,
      "z": 120.0
    },
    "up": {
      "x": 0.0,
      "y": 1.0,
      "z": 0.0
    },
    "yaw": 0.0
  },
  "delta_times": [
    1.0
  ],
  "time": {
    "type": "relative",
    "value": "0d",
    "is_paused": false
  }
}
