from twisted.application.service import ServiceMaker

noded = ServiceMaker("noded", "noded.tap", "A uploadd storage node", "noded")
