module bokeh-gateway-stack/pause

go 1.26.0
